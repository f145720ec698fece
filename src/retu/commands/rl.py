"""`retu rl`: RL (GRPO, DAPO_d, DAPO_dc, LUFFY, SRFT, UPT) from any checkpoint; resumes automatically."""

from __future__ import annotations

from pathlib import Path

import typer

from retu.commands import PROGRESS, RUN_DIR
from retu.quiet import quiet_library_bars


def rl(
    config: Path = typer.Argument(..., help="YAML config (e.g. configs/tiny/rl_dapo_dc.yaml)."),
    overrides: list[str] = typer.Argument(None, help="Config overrides section.key=value, e.g. optim.lr=1e-5."),
    algo: str = typer.Option(None, "--algo", help="Algorithm preset: grpo, dapo_d, dapo_dc, luffy, srft or upt "
                                                  "(default: the config's loss.algo)."),
    run_dir: Path = RUN_DIR,
    progress: bool = PROGRESS,
) -> None:
    """Train with RL; write metrics.jsonl, eval records against cumulative FLOPs, and checkpoints."""
    from retu.config import load_config

    extra = list(overrides or [])
    if algo is not None:
        extra.append(f"loss.algo={algo}")
    if run_dir is not None:
        extra.append(f"log.run_dir={run_dir}")
    cfg = load_config(config, extra, kind="rl")  # config errors come before the heavy imports

    from retu.engine.rl import run_rl
    from retu.engine.run import is_main_process

    quiet_library_bars()
    result = run_rl(cfg, progress=progress)  # a stop the run recorded (RunStopped) exits 1 in cli.main
    if not is_main_process():
        return
    overall = result.eval_metrics.get("eval/overall")
    score = "" if overall is None else f", eval/overall {overall:.1f}%"
    typer.echo(f"{result.run_dir}: step {result.step}{score}")


def register(app: typer.Typer) -> None:
    """Add `retu rl` to the root CLI."""
    app.command("rl")(rl)
