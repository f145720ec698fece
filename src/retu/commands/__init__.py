"""CLI verbs. Each module defines `register(app)`; heavy imports stay inside the commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from retu.commands import compare, data, evaluate, fit, flops, phases, pipeline, report, rl, sft
    from retu.commands import list as list_cmd

    for module in (flops, phases, fit, data, list_cmd, evaluate, report, rl, sft, pipeline, compare):
        module.register(app)


# Options every training verb (sft, rl, pipeline, compare) shares, defined once.
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar while training.")
RUN_DIR = typer.Option(None, "--run-dir", help="Run directory (default: the config's log.run_dir); an existing "
                                               "run of the same config resumes.")


def check_positive(**values: int | None) -> None:
    """Raise RetuInputError naming the first option (as --kebab-case) whose value is below 1 (None: unset)."""
    from retu.errors import RetuInputError

    for name, value in values.items():
        if value is not None and value < 1:
            raise RetuInputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
