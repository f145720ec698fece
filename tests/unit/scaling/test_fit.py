"""The ceiling fit on synthetic curves with known parameters, outliers, collapse and bad input."""

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.scaling import FitOptions, detect_collapse, fit_ceiling
from retu.scaling.forms import gain_fraction, sigmoid_power


def _curve(n=60, a=80.0, c=20.0, b=1.5, p0=60.0, noise=0.3, seed=0, x_max=200.0):
    rng = np.random.default_rng(seed)
    x = np.linspace(x_max / n, x_max, n)
    return x, sigmoid_power(x, p0, a, c, b) + rng.normal(0, noise, n)


def test_form_hand_values():
    # At x = C_mid half the gain is realised: 50 + (80 - 50) / 2 = 65; at 0 the start, far out the ceiling.
    np.testing.assert_allclose(sigmoid_power(np.array([0.0, 10.0, 1e12]), 50, 80, 10, 1.5), [50, 65, 80])
    # (x / C)^B = 9 at x = 3C with B = 2: share 1 - 1 / (1 + 9) = 0.9.
    assert gain_fraction(30.0, 10.0, 2.0) == pytest.approx(0.9)


@pytest.mark.parametrize("theta", [(80.0, 0.5, 1.5), (55.0, 0.97, 0.3), (99.0, 0.002, 8.0)])
def test_the_solver_jacobian_equals_central_differences(theta):
    from retu.scaling.lsq import jacobian_theta, predict_theta

    x, theta, h = np.array([0.5, 3.0, 20.0, 150.0]), np.array(theta), 1e-6
    f = lambda t: predict_theta(t, x, 60.0, 20.0)  # noqa: E731
    numeric = np.column_stack([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(jacobian_theta(theta, x, 60.0, 20.0), numeric, rtol=1e-5, atol=1e-6)


def test_recovers_known_parameters_of_a_saturated_curve():
    x, y = _curve()
    fit = fit_ceiling(x, y, p_start=60.0)
    assert fit.saturated and not fit.collapsed
    assert fit.A == pytest.approx(80.0, abs=0.5)
    assert fit.PL == pytest.approx(20.0, abs=0.5)
    assert fit.c_mid == pytest.approx(20.0, rel=0.1) and fit.slope == pytest.approx(1.5, rel=0.15)
    assert 0.2 < fit.ceiling_ci[1] - fit.ceiling_ci[0] < 1.5  # coverage: benchmarks/bench_fit_coverage.py
    assert fit.holdout_rmse < 0.5 and fit.r2 > 0.95
    assert fit.n_outliers == 0


def test_lts_and_mz_survive_20_percent_outliers():
    x, y = _curve(seed=1)
    rng = np.random.default_rng(2)
    bad = rng.choice(len(x), size=len(x) // 5, replace=False)
    y = y.copy()
    y[bad] -= rng.uniform(4, 15, size=len(bad))  # evaluation glitches pull points down
    fit = fit_ceiling(x, y, p_start=60.0)
    assert fit.A == pytest.approx(80.0, abs=0.6)
    assert set(np.flatnonzero(~fit.fitted_mask)) >= set(bad[np.argsort(y[bad])[:6]])  # the worst are excluded


def test_collapse_is_detected_and_only_the_points_before_it_fitted():
    x, y = _curve(seed=3)
    y = y.copy()
    y[50:] -= 30.0  # the run falls apart after point 50 (below 75% of its best)
    fit = fit_ceiling(x, y, p_start=60.0)
    assert fit.collapsed and fit.collapse_x == pytest.approx(x[50])
    assert not fit.fitted_mask[50:].any()
    assert fit.ceiling == pytest.approx(80.0, abs=1.0)
    assert detect_collapse(np.arange(5.0), np.array([70, 75, 68, 75, 75.0])) is None  # one dip recovers
    assert detect_collapse(np.arange(5.0), np.array([70, 75, 68, 75, 69.0])) is None  # glitches, no crash


def test_a_curve_still_rising_is_flagged_and_bounded():
    # Same form with C_mid far beyond the data: only ~20% of the gain is realised by the last point.
    x, y = _curve(c=2000.0, b=1.0, a=95.0, noise=0.1)
    fit = fit_ceiling(x, y, p_start=60.0)
    assert not fit.saturated and fit.A is None and fit.PL is None
    lo, hi = fit.ceiling_bounds
    assert lo >= y.max() - 0.5 and hi > lo + 2.0
    assert "unsaturated" in fit.ceiling_text()
    assert fit.to_dict()["A"] is None


def test_nan_rows_dropped_and_counted_and_p_start_from_zero_point():
    x, y = _curve(n=30)
    x = np.concatenate([[0.0], x])
    y = np.concatenate([[60.0], y])
    y[5] = np.nan
    fit = fit_ceiling(x, y)
    assert fit.p_start == 60.0 and fit.n_dropped == 1 and fit.n_points == 29


@pytest.mark.parametrize("x, y, kwargs, match", [
    ([1, 2, 3], [50, 60, 70], {"p_start": 40}, "at least 4"),
    ([1, 2, -3, 4, 5], [1, 2, 3, 4, 5], {"p_start": 0}, "negative compute at point 2"),
    ([1, 3, 2, 4, 5], [1, 2, 3, 4, 5], {"p_start": 0}, "not increasing at point 2"),
    ([1, 2], [np.nan, np.nan], {"p_start": 0}, "no finite"),
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], {}, "no point at compute 0 and no p_start"),
])
def test_bad_input(x, y, kwargs, match):
    with pytest.raises(RetuInputError, match=match):
        fit_ceiling(np.array(x, float), np.array(y, float), source="c.json", **kwargs)


def test_options_validated():
    with pytest.raises(RetuInputError, match="saturation_gain"):
        FitOptions(saturation_gain=1.5)


def test_fits_on_a_bound_are_named():
    assert fit_ceiling(*_curve(), p_start=60.0).at_bounds == ()
    # All of the gain at the first evaluation, then flat: a step function (C_mid -> 0, B on a bound).
    x = np.arange(0.0, 9.0)
    y = np.array([60.0, 75.0, 75.2, 74.9, 75.1, 75.0, 74.8, 75.2, 75.0])
    assert fit_ceiling(x, y).at_bounds == ("gain at end=1",)
    # A flat curve: no gain to place, so B and C_mid are both unidentified.
    flat = np.array([6.5, 6.0, 7.0, 6.5, 6.0, 7.5, 6.5, 6.0, 7.0])
    assert fit_ceiling(x, flat).at_bounds == ("B=10", "gain at end=1")


def test_the_ceiling_interval_stays_on_the_accuracy_scale():
    # pure SFT of configs/tiny/long.yaml, seed 2 (EFLOPs, %): the widened bootstrap reached 101.8
    x = np.array([0.0, 1.53, 3.07, 4.61, 6.14, 7.67, 9.2, 10.74, 12.27, 13.81, 15.34, 16.87, 18.41, 19.93,
                  21.48, 23.01, 24.54, 26.08, 27.61]) * 1e-6
    y = np.array([4.5, 4.5, 8.25, 24.0, 27.75, 44.25, 49.25, 59.0, 59.25, 71.25, 73.75, 63.0, 71.0, 73.75,
                  78.5, 79.75, 89.5, 81.5, 86.0])
    fit = fit_ceiling(x, y, p_start=4.5)
    assert fit.saturated and fit.ceiling == pytest.approx(86.45, abs=0.01)
    assert fit.ceiling_ci[0] == pytest.approx(77.0, abs=0.1) and fit.ceiling_ci[1] == 100.0


def test_the_ceiling_floor_is_50_points_under_the_data_but_not_under_zero_accuracy():
    from retu.scaling.lsq import ceiling_floor

    assert ceiling_floor(70.0, np.array([72.0, 60.0])) == 10.0
    assert ceiling_floor(8.5, np.array([8.0, 6.5])) == 0.0
    assert ceiling_floor(-2.0, np.array([1.0])) == -2.0  # data already below 0 (not an accuracy) keep their own
