"""`retu pipeline`: SFT, sub-phases, RL branches, ceiling fits and the report, resumable by stage."""

from __future__ import annotations

from pathlib import Path

import typer

from retu.commands import PROGRESS
from retu.quiet import quiet_library_bars


def pipeline(
    config: Path = typer.Argument(None, help="Pipeline YAML (default: the embedded arithmetic default)."),
    overrides: list[str] = typer.Argument(None, help="Top-level key=value overrides, e.g. run_dir=runs/p2."),
    progress: bool = PROGRESS,
) -> None:
    """Run the sequential SFT-then-RL pipeline and write <run_dir>/report/report.md."""
    from retu.pipeline import load_pipeline_config, run_pipeline

    if config is not None and "=" in str(config) and not config.exists():
        overrides, config = [str(config), *(overrides or [])], None
    quiet_library_bars()
    path = run_pipeline(load_pipeline_config(config, overrides or []), echo=typer.echo, progress=progress)
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline)
