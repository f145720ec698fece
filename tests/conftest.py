"""Shared test paths and helpers. ../shared sits beside the repository, in development and in CI."""

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CURVES = SHARED / "data" / "retu"


def cli_app():
    """The `retu` commands on a fresh Typer app for CliRunner (bad input comes back as the exception)."""
    import typer

    from retu.commands import register

    app = typer.Typer()

    @app.callback()
    def _root():
        """Root."""

    register(app)
    return app


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """One JSON object a line; returns `path`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSONL file (split on newlines only: some problems hold U+2028, which
    str.splitlines() also breaks on)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line]
