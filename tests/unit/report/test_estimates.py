"""Estimates with 95% intervals: Wilson for accuracies, Fisher z for correlations, and combining seeds."""

import math

import pytest

from retu.report.estimates import CORRELATION, Estimate, binomial_estimate, combine, correlation_estimate


def est(value, half=2.0):
    return Estimate(value, value - half, value + half)


def test_wilson_interval_matches_the_closed_form():
    # p = 0.6, n = 200: centre (0.6 + z^2/400) / (1 + z^2/200), half-width z sqrt(p q / n + z^2 / 4n^2) / (...)
    e = binomial_estimate(60.0, 200)
    z = 1.959963984540054
    centre = (0.6 + z * z / 400) / (1 + z * z / 200)
    half = z * math.sqrt(0.24 / 200 + z * z / (4 * 200 * 200)) / (1 + z * z / 200)
    assert e.lo == pytest.approx(100 * (centre - half), abs=1e-9) and e.hi == pytest.approx(100 * (centre + half), abs=1e-9)
    assert (round(e.lo, 2), round(e.hi, 2), e.n) == (53.08, 66.54, 200)
    assert not binomial_estimate(60.0, None).known


def test_combine_uses_the_spread_across_seeds_with_a_floor_at_the_within_seed_error():
    # Spread: sd of (60, 70, 80) = 10, t(0.975, 2) = 4.3027 -> half-width 4.3027 * 10 / sqrt(3) = 24.84.
    wide = combine([est(60, 1.0), est(70, 1.0), est(80, 1.0)])
    assert wide.value == pytest.approx(70.0) and wide.hi - wide.value == pytest.approx(24.842, abs=1e-3)
    # Equal values: the floor is 1.96 * sqrt(3 * (2 / 1.96)^2) / 3 = 2 / sqrt(3).
    tight = combine([est(70, 2.0)] * 3)
    assert tight.hi - tight.value == pytest.approx(2.0 / math.sqrt(3.0)) and tight.seeds == 3
    assert combine([est(5.0)]) == est(5.0)


def test_combined_interval_stays_on_the_scale_of_the_quantity():
    # Ceilings of 99 and 95 (near the task's top, as at long SFT budgets): mean 97, spread
    # 12.706 * sd 2.83 / sqrt(2) = 25.4, so the raw interval [71.6, 122.4] is cut at 100%.
    ceiling = combine([Estimate(99.0, 97.0, 100.0), Estimate(95.0, 93.0, 97.0)])
    assert ceiling.value == pytest.approx(97.0) and ceiling.lo == pytest.approx(71.59, abs=0.01)
    assert ceiling.hi == 100.0
    floor = combine([Estimate(1.0, 0.0, 3.0), Estimate(5.0, 3.0, 7.0)])
    assert floor.lo == 0.0 and floor.hi == pytest.approx(28.41, abs=0.01)
    r = combine([Estimate(-0.95, -0.99, -0.80, scale=CORRELATION), Estimate(-0.6, -0.9, -0.1, scale=CORRELATION)])
    assert r.lo == -1.0 and r.scale == CORRELATION
    assert combine([est(60.0), Estimate(62.0, 55.0, math.inf)]).hi == math.inf  # "at least" stays open
    with pytest.raises(ValueError, match="different scales"):
        combine([est(0.5), Estimate(0.5, 0.4, 0.6, scale=CORRELATION)])


def test_correlation_interval_by_fisher_z():
    e = correlation_estimate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [80, 76, 75, 70, 66, 61])
    assert e.value < -0.98 and e.n == 6
    half = 1.959963984540054 / math.sqrt(3)
    assert math.atanh(e.hi) - math.atanh(e.value) == pytest.approx(half)
    assert not correlation_estimate([1, 2, 3], [3, 2, 1.5]).known  # fewer than 4 pairs: no interval
    assert e.scale == CORRELATION
