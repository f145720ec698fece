"""Live ceilings of running curves and hopeless branches (the pure functions behind training and pipelines)."""

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.scaling import estimate_live_ceiling, find_hopeless, predict_ceiling
from retu.scaling.forms import sigmoid_power


def _evals(n, c_mid=20.0, seed=0):
    """The branch point (x = 0, 60%) and n noisy evaluations every 5 EFLOPs of a curve heading for 80%."""
    x = np.arange(n + 1) * 5.0
    y = sigmoid_power(x, 60.0, 80.0, c_mid, 1.5) + np.random.default_rng(seed).normal(0, 0.3, n + 1) * (x > 0)
    return x, y


def test_none_until_enough_evaluations():
    x, y = _evals(4)
    assert estimate_live_ceiling(x, y) is None  # 4 evaluations after the branch point, 5 needed
    assert estimate_live_ceiling(x, y, min_points=4) is not None
    y_nan = y.copy()
    y_nan[2] = np.nan  # a failed evaluation does not count
    assert estimate_live_ceiling(x, y_nan, min_points=4) is None


def test_none_when_a_collapse_leaves_too_few_points():
    x, y = _evals(8)
    y[4:] = 30.0  # the run falls apart after its third evaluation
    assert estimate_live_ceiling(x, y) is None


def test_the_same_numbers_as_predict_ceiling_on_the_points_so_far():
    x, y = _evals(12)
    live = estimate_live_ceiling(x, y)
    fit = predict_ceiling(x, y, upto=1.0)
    assert (live.A, live.interval, live.n_points) == (fit.A, fit.ceiling_bounds, 12)
    assert live.lo <= 80.0 <= live.hi
    assert live.to_metrics() == {"ceiling/A": live.A, "ceiling/lo": live.lo, "ceiling/hi": live.hi}


def test_a_bound_while_the_curve_is_still_far_from_its_ceiling():
    x, y = _evals(6, c_mid=400.0)  # by x = 30 about 2% of the gain is realised
    live = estimate_live_ceiling(x, y)
    assert live.A is None and live.to_metrics()["ceiling/A"] is None and live.hi == 100.0
    assert not live.open_below and 60.0 < live.lo < 61.0  # the rise so far is a lower bound
    assert live.text() == f"ceiling >= {live.lo:.1f}" and live.to_metrics()["ceiling/lo"] == live.lo


# The switch branch of the main job on an AVX2-only AMD EPYC (seed 0, at 97cb773): 69.25% at the branch
# point, a dip to 64 and back to 72 in 40 steps. Its records and bar used to say "ceiling >= 15.8":
# the search range's floor (50 points under the lowest point), not a bound the data set.
DIP_X = np.array([0.0, 0.2441, 0.4859, 0.7256, 0.9698, 1.2194, 1.4649, 1.7232, 1.9740]) * 1e-6  # EFLOPs
DIP_Y = np.array([69.25, 64.0, 65.75, 67.75, 70.0, 65.75, 67.5, 70.25, 72.0])


def test_a_curve_that_stays_near_its_start_has_no_lower_bound():
    live = estimate_live_ceiling(DIP_X, DIP_Y)
    fit = predict_ceiling(DIP_X, DIP_Y)
    assert live.A is None and live.open_below and fit.open_below and live.hi == 100.0
    assert live.lo == fit.ceiling_bounds[0] == pytest.approx(15.75)  # min of the fitted points - 50
    assert live.to_metrics() == {"ceiling/A": None, "ceiling/lo": None, "ceiling/hi": 100.0}
    assert live.text() == "ceiling not pinned yet"
    assert fit.ceiling_text() == "not pinned (unsaturated; the whole search range 15.8-100.0 fits)"
    assert fit.to_dict()["open_below"] is True and predict_ceiling(*_evals(12)).to_dict()["open_below"] is False
    assert find_hopeless({"dip": live.interval, "rival": (70.0, 80.0)}) == ()  # open above: never hopeless


# RL from the base model in the main job (seed 0, at a852c30): flat at 7-8%, its last points lowest.
FLAT_X = np.array([0.0, 0.1146, 0.2333, 0.3285, 0.4510, 0.5759, 0.7085, 0.8156, 0.9518]) * 1e-6  # EFLOPs
FLAT_Y = np.array([8.5, 8.25, 6.5, 8.25, 8.25, 8.0, 8.25, 7.5, 6.75])


def test_a_flat_curve_that_ends_low_gets_no_ceiling_below_zero_accuracy():
    # The free fit extrapolates the last drop; its box used to reach 50 points below the data (A = -43.25).
    live = estimate_live_ceiling(FLAT_X, FLAT_Y)
    assert live.lo == pytest.approx(0.0, abs=1e-9) and live.A == pytest.approx(0.0, abs=1e-6)
    assert 6.75 < live.hi < 8.5
    assert "A=0" in predict_ceiling(FLAT_X, FLAT_Y).at_bounds  # the floor is a bound, flagged like A=100


def test_min_points_below_the_fit_minimum_is_refused():
    x, y = _evals(6)
    with pytest.raises(RetuInputError, match="min_points must be at least 4, got 3"):
        estimate_live_ceiling(x, y, min_points=3)


def test_hopeless_branches():
    # The best lower bound is 80 (a): b's interval ends below it; c reaches 80.5 and d has no estimate.
    intervals = {"a": (80.0, 84.0), "b": (70.0, 79.9), "c": (76.0, 80.5), "d": None}
    assert find_hopeless(intervals) == ("b",)
    # An open interval (A null: hi at the bound) is never hopeless; nor is anything without a rival.
    assert find_hopeless({"a": (82.0, 86.0), "e": (75.0, 100.0)}) == ()
    assert find_hopeless({"a": (82.0, 86.0)}) == () and find_hopeless({"d": None}) == () and find_hopeless({}) == ()
    # Touching is not below: hi equal to the best lower bound keeps the branch.
    assert find_hopeless({"a": (80.0, 84.0), "b": (70.0, 80.0)}) == ()
