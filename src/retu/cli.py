"""The `retu` command line: one sub-command per verb, each a thin wrapper over a library function."""

from __future__ import annotations

import sys
import warnings

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

    # Library notices a user cannot act on, repeated every RL step: TRL reads a property transformers
    # deprecated, and the Trainer asks for pinned memory on a CPU-only machine.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")
    register(app)
    try:
        app()
    except RetuInputError as exc:
        typer.echo(f"retu: error: {exc}", err=True)
        sys.exit(2)
