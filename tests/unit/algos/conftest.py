"""Fixtures of the algos tests: a random micro-batch (tests/loss_inputs.py)."""

import pytest

from loss_inputs import random_inputs


@pytest.fixture
def inputs():
    return random_inputs()
