"""CLI verbs. Each module defines `register(app)`; imports stay inside the commands so startup is fast."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from retu.commands import flops

    flops.register(app)
