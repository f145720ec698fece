"""`retu sft`: supervised fine-tuning with validation loss, FLOPs, sub-phases and resumable checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from retu.commands import PROGRESS, RUN_DIR
from retu.quiet import quiet_library_bars


def sft(
    config: Path = typer.Argument(..., help="Run config (YAML), e.g. configs/tiny/sft.yaml."),
    overrides: list[str] = typer.Argument(None, help="Config overrides, section.key=value (e.g. optim.lr=1e-3)."),
    run_dir: Path = RUN_DIR,
    progress: bool = PROGRESS,
) -> None:
    """Train with SFT; rerunning the same command resumes from the last checkpoint."""
    from retu.config import load_config

    cfg = load_config(config, overrides or [])  # before the heavy imports: a bad key fails fast
    if run_dir is not None:
        cfg = dataclasses.replace(cfg, log=dataclasses.replace(cfg.log, run_dir=str(run_dir)))

    from retu.engine.run import is_main_process
    from retu.engine.sft import run_sft, sft_summary

    quiet_library_bars()
    ctx = run_sft(cfg, progress=progress and is_main_process())
    if not is_main_process():  # the main process reports (the others may read before it writes)
        return
    end = ctx.logger.records()[-1]
    summary = sft_summary(ctx)
    typer.echo(f"{ctx.run_dir}: {end['step']} steps, {end['tokens']:.4g} tokens, {end['flops']:.4g} FLOPs; "
               f"final val loss {summary['final_val_loss']:.4f}, minimum {summary['val_loss_min']:.4f} at step "
               f"{summary['step_min']}")
    typer.echo(f"switch to RL at step {summary['recommended_step']} (first Stable checkpoint)"
               + ("" if summary["saturation_confirmed"] else "; saturation not confirmed (minimum at the last "
                  "validation)"))


def register(app: typer.Typer) -> None:
    app.command("sft")(sft)
