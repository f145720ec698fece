"""The `retu` command line: one sub-command per verb, each a thin wrapper over a library function."""

from __future__ import annotations

import sys

import typer

from retu.errors import RetuInputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="retu: SFT, RL and synchronized SFT-RL with compute accounting and ceiling analysis.")


@app.callback()
def _root() -> None:
    """retu: SFT, RL and synchronized SFT-RL with compute accounting and ceiling analysis."""


def main() -> None:
    """Console entry point: bad input prints one line naming the problem and exits with code 2."""
    from retu.commands import register

    register(app)
    try:
        app()
    except RetuInputError as exc:
        typer.echo(f"retu: error: {exc}", err=True)
        sys.exit(2)
