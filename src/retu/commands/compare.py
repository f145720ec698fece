"""`retu compare`: pure SFT, pure RL, LUFFY, SRFT, UPT and SFT-then-RL on one compute axis (Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from retu.commands import PROGRESS
from retu.quiet import quiet_library_bars


def compare(
    config: Path = typer.Argument(None, help="Compare YAML (e.g. configs/tiny/compare.yaml; default: every "
                                  "paradigm on the embedded arithmetic default)."),
    overrides: list[str] = typer.Argument(None, help="Top-level key=value overrides, e.g. run_dir=runs/c2."),
    progress: bool = PROGRESS,
) -> None:
    """Run each paradigm from the base model and write <run_dir>/report/compare.md with fitted ceilings."""
    from retu.compare import load_compare_config, run_compare

    if config is not None and "=" in str(config) and not config.exists():
        overrides, config = [str(config), *(overrides or [])], None
    quiet_library_bars()
    path = run_compare(load_compare_config(config, overrides or []), echo=typer.echo, progress=progress)
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
