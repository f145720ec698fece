"""Shared test paths. ../shared sits beside the repository, in development and in CI."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CURVES = SHARED / "data" / "retu"
