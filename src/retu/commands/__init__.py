"""CLI verbs. Each module defines `register(app)`; heavy imports stay inside the commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from retu.commands import compare, data, evaluate, fit, flops, phases, pipeline, report, rl, sft
    from retu.commands import list as list_cmd

    for module in (flops, phases, fit, data, list_cmd, evaluate, report, rl, sft, pipeline, compare):
        module.register(app)


def quiet_library_bars() -> None:
    """Silence the bars datasets and transformers show for tokenizing, loading and checkpoint writing
    (a second each): the training bar is enough."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
