"""Run the doctests of the pure modules (hand-checked examples in the docstrings)."""

import doctest
import importlib

import pytest

MODULES = ["retu.flops", "retu.phases", "retu.metrics", "retu.scaling.forms", "retu.scaling.robust",
           "retu.scaling.fit", "retu.scaling.decompose", "retu.scaling.lsq", "retu.scaling.prior",
           "retu.scaling.early", "retu.scaling.live"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
