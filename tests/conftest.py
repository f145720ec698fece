"""Shared test paths and helpers.

../shared sits beside the repository in development and in CI; a clone alone has no such folder, so a
test that needs one of its files skips, naming the file (`needs_shared`, `shared_json`). The paper
authors' curves ship inside retu (`retu.scaling.AUTHORS_CURVES`) and need nothing beside the clone.
"""

import json
import os
from pathlib import Path

# Under pytest-xdist each worker process gets its share of the cores for torch and BLAS, set before
# either is imported (the runs a test starts inherit it), so two workers do not oversubscribe two cores.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest  # noqa: E402

from retu.scaling import AUTHORS_CURVES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CURVES = AUTHORS_CURVES


def _missing(rel: str) -> str:
    return f"needs ../shared/{rel}, which is not beside this clone"


def needs_shared(rel: str):
    """Mark a test that reads ../shared/`rel`: it skips, naming the path, when the path is absent."""
    return pytest.mark.skipif(not (SHARED / rel).exists(), reason=_missing(rel))


def shared_json(rel: str):
    """The JSON at ../shared/`rel`; skips the calling test module, naming the file, when it is absent."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(_missing(rel), allow_module_level=True)
    return json.loads(path.read_text())


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
