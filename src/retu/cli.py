"""The `retu` command line: one sub-command per verb, each a thin wrapper over a library function."""

from __future__ import annotations

import sys
import warnings

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


def ignore_library_notices() -> None:
    """Library notices a user cannot act on, repeated every RL step: TRL reads a property transformers
    deprecated, and the Trainer asks for pinned memory on a CPU-only machine."""
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")


def _leave_process_group() -> None:
    """End a distributed launch's process group before a clean exit (a process that exits inside one
    can be aborted while gloo's threads still run); torch is looked at only when a command imported it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
