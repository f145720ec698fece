"""Run the doctests of every module in src/retu (hand-checked examples in the docstrings).

The module list is found by walking the package, so a new module's examples run without being listed.
"""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import retu

MODULES = sorted(m.name for m in pkgutil.walk_packages(retu.__path__, prefix="retu.") if not m.ispkg)


def _has_examples(name: str) -> bool:
    return ">>>" in Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8")


WITH_EXAMPLES = [m for m in MODULES if _has_examples(m)]


def test_walk_finds_the_package():
    assert "retu.phases" in WITH_EXAMPLES and "retu.cli" in MODULES and len(WITH_EXAMPLES) >= 30
    # every folder of src/retu is a package (an __init__.py): the walk, and the wheel, skip the others
    folders = {p.name for p in Path(retu.__file__).parent.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    assert {name.split(".")[1] for name in MODULES if name.count(".") > 1} == folders


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"
