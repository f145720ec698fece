"""CLI verbs. Each module defines `register(app)`; heavy imports stay inside the commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from retu.commands import compare, data, evaluate, fit, flops, phases, pipeline, report, rl, sft
    from retu.commands import list as list_cmd

    for module in (flops, phases, fit, data, list_cmd, evaluate, report, rl, sft, pipeline, compare):
        module.register(app)
