"""The one exception type for bad input.

Every check of user input (files, rows, config keys, CLI values) raises `RetuInputError` with a
one-line message that names the file, line or field and the problem. The CLI prints it and exits
with code 2 before anything is written. Input that is kept but suspicious (counted) gets `warn`.
"""

from __future__ import annotations

import sys


class RetuInputError(ValueError):
    """Bad user input; the message is one line naming where and what."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path: object, line: int | None = None) -> str:
    """Format a location as `path` or `path:line` for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


def warn(message: str) -> None:
    """Print a one-line warning about the input (kept and counted, not refused) to stderr."""
    print("warning: " + " ".join(str(message).split()), file=sys.stderr, flush=True)
