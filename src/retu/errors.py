"""retu's two error families, both caught once in `retu.cli.main`.

Every check of user input (files, rows, config keys, CLI values) raises `RetuInputError` with a
one-line message that names the file, line or field and the problem. The CLI prints it and exits
with code 2 before anything is written. Input that is kept but suspicious (counted) gets `warn`.
`read_text` and `read_json` open a user's file with those errors (missing, not UTF-8, not JSON).

A run that stops itself (its loss diverged, DAPO ran out of generation rounds) raises a `RunStopped`
after recording the stop in its metrics.jsonl; the CLI prints its line and exits with code 1.
retu's own bugs (a broken invariant, e.g. a tensor of the wrong shape) are neither: they raise
ValueError or RuntimeError with a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


class RetuInputError(ValueError):
    """Bad user input; the message is one line naming where and what."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class RunStopped(RuntimeError):
    """A run stopped itself; the message names the step and what stopped it (one line)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path: object, line: int | None = None) -> str:
    """Format a location as `path` or `path:line` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


def one_line(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`, for a record or a row that says why.

    >>> one_line(RuntimeError("CUDA out of memory.\\nTried to allocate 2.00 GiB"))
    'RuntimeError: CUDA out of memory.'
    """
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def warn(message: str) -> None:
    """Print a one-line warning about the input (kept and counted, not refused) to stderr."""
    print("warning: " + " ".join(str(message).split()), file=sys.stderr, flush=True)


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's content.

    Raises:
        RetuInputError: The file is missing, unreadable or not UTF-8 (naming the byte).
    """
    path = Path(path)
    if not path.is_file():
        raise RetuInputError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RetuInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise RetuInputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def read_json(path: str | Path) -> object:
    """A JSON file's data.

    Raises:
        RetuInputError: As `read_text`, or not valid JSON (naming the line).
    """
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise RetuInputError(f"{where(path, exc.lineno)}: not valid JSON ({exc.msg})") from None
