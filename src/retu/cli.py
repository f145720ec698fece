"""The `retu` command line: one sub-command per verb, each a thin wrapper over a library function."""

from __future__ import annotations

import sys

import typer

from retu.errors import RetuInputError, RunStopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="retu: SFT, RL and synchronized SFT-RL with compute accounting and ceiling analysis.")


@app.callback()
def _root() -> None:
    """retu: SFT, RL and synchronized SFT-RL with compute accounting and ceiling analysis."""


def main() -> None:
    """Console entry point: bad input prints one line naming the problem and exits with code 2; a run
    that stopped itself prints one line and exits with code 1 (`retu.errors`)."""
    from retu.commands import register
    from retu.quiet import ignore_library_notices

    ignore_library_notices()
    register(app)
    try:
        app()
    except RetuInputError as exc:
        typer.echo(f"retu: error: {exc}", err=True)
        sys.exit(2)
    except RunStopped as exc:  # the run recorded its stop (run_end) before raising
        typer.echo(f"retu: stopped: {exc}", err=True)
        sys.exit(1)
    except SystemExit as end:
        if not end.code:  # a finished command; after a failure the launcher stops the other processes
            _leave_process_group()
        raise


def _leave_process_group() -> None:
    """End a distributed launch's process group before a clean exit (a process that exits inside one
    can be aborted while gloo's threads still run); torch is looked at only when a command imported it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
