"""Ceilings of unfinished curves (`predict_ceiling`, `retu fit --upto`) on synthetic curves with a known ceiling."""

import math

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.scaling import SiblingPrior, fit_ceiling, predict_ceiling
from retu.scaling.forms import sigmoid_power

P0 = 60.0


def _curve(n=40, a=80.0, c=20.0, b=1.5, noise=0.3, seed=0, x_max=200.0):
    rng = np.random.default_rng(seed)
    x = np.linspace(x_max / n, x_max, n)
    return x, sigmoid_power(x, P0, a, c, b) + rng.normal(0, noise, n)


def _family_prior(c_mid=20.0, slope=1.5, gain=20.0, spread=0.2, n=6, noise=0.5):
    """The prior n finished siblings of the family (ln C_mid, ln B ~ N(ln c_mid, ln slope; spread)) would give."""
    grid = np.linspace(-1.0, 1.0, n) * spread  # evenly spread siblings: sd ~ spread
    return SiblingPrior(math.log(c_mid), math.log(slope), spread * math.sqrt(1 + 1 / n), spread * math.sqrt(1 + 1 / n),
                        noise, gains=(gain,) * n, c_mids=tuple(c_mid * np.exp(grid)), slopes=tuple(slope * np.exp(-grid)))


def test_truncation_keeps_the_points_up_to_the_fraction():
    x, y = _curve()
    fit = predict_ceiling(x, y, upto=0.5, p_start=P0)
    assert fit.upto == 0.5 and fit.n_points == int((x <= 100.0).sum()) == 20
    assert fit.x.max() <= 100.0 and len(fit.x) == len(fit.inlier_mask) == 20
    assert predict_ceiling(x, y, upto=1.0, p_start=P0).n_points == 40
    d = fit.to_dict()
    assert d["upto"] == 0.5 and d["prior_curves"] == 0 and "upto" not in fit_ceiling(x, y, p_start=P0).to_dict()


def test_a_saturated_first_half_gives_the_known_ceiling():
    # By x = 100 the curve has realised 91% of its gain: the first half pins A = 80.
    x, y = _curve()
    fit = predict_ceiling(x, y, upto=0.5, p_start=P0)
    assert fit.A == pytest.approx(80.0, abs=0.6)
    lo, hi = fit.ceiling_ci
    assert lo < 80.0 < hi and hi - lo < 3.0


def test_a_curve_far_from_its_ceiling_gives_a_lower_bound_not_a_number():
    # At 30% of compute (x <= 60) this curve has realised 18% of its gain (A = 95, C_mid = 400).
    x, y = _curve(a=95.0, c=400.0, b=1.0, noise=0.3)
    fit = predict_ceiling(x, y, upto=0.3, p_start=P0)
    assert fit.A is None and fit.to_dict()["A"] is None and not fit.saturated
    lo, hi = fit.ceiling_bounds
    assert lo <= 95.0 <= hi == 100.0
    assert lo >= y[x <= 60].max() - 1.0  # the bound is not vacuous
    assert fit.ceiling_text().startswith(">=")


def test_coverage_of_the_true_ceiling_with_a_fixed_seed():
    # 8 curves of one family (A 76-84, C_mid and B spread by 20%) at half their compute, with the
    # family's prior: the 95% interval should hold almost every true ceiling.
    rng = np.random.default_rng(7)
    prior = _family_prior()
    held, widths = 0, []
    for seed in range(8):
        a, c, b = 80.0 + rng.uniform(-4, 4), 20.0 * math.exp(rng.normal(0, 0.2)), 1.5 * math.exp(rng.normal(0, 0.2))
        x, y = _curve(n=20, a=a, c=c, b=b, noise=0.5, seed=seed, x_max=80.0)
        fit = predict_ceiling(x, y, upto=0.5, p_start=P0, prior=prior)
        held += fit.ceiling_ci[0] <= a <= fit.ceiling_ci[1]
        widths.append(fit.ceiling_ci[1] - fit.ceiling_ci[0])
    assert held >= 7
    assert np.median(widths) < 12.0


def test_the_prior_pins_what_the_curve_alone_cannot():
    # At 30% (x <= 24) the curve has realised ~56% of its gain: alone the ceiling is open-ended; with
    # siblings of the same shape it is a number whose interval holds the truth.
    x, y = _curve(n=30, noise=0.5, x_max=80.0, seed=2)
    alone = predict_ceiling(x, y, upto=0.3, p_start=P0)
    prior = _family_prior()
    together = predict_ceiling(x, y, upto=0.3, p_start=P0, prior=prior)
    assert alone.A is None and alone.ceiling_bounds[1] == 100.0
    assert together.A is not None and together.prior_curves == 6
    lo, hi = together.ceiling_ci
    assert lo <= 80.0 <= hi and hi - lo < alone.ceiling_bounds[1] - alone.ceiling_bounds[0]


def test_a_curve_unlike_its_siblings_follows_its_own_data():
    # A base-model-like curve: all of its gain by x ~ 5 (C_mid = 1), its siblings' C_mid is 20. The
    # t prior's heavy tails let the data win: the interval holds the truth.
    x, y = _curve(n=30, a=75.0, c=1.0, b=1.2, noise=0.4, x_max=60.0, seed=4)
    fit = predict_ceiling(x, y, upto=0.5, p_start=P0, prior=_family_prior())
    assert fit.ceiling_ci[0] <= 75.0 <= fit.ceiling_ci[1]
    assert fit.c_mid < 3.0


@pytest.mark.parametrize("upto", [0, 1.5, -0.2, float("nan"), True, "0.5"])
def test_upto_outside_0_1_is_refused_naming_it(upto):
    x, y = _curve()
    with pytest.raises(RetuInputError, match=r"upto must be a fraction of the curve's compute in \(0, 1\], got"):
        predict_ceiling(x, y, upto=upto, p_start=P0)


def test_too_few_points_after_the_cut_names_the_cut():
    x, y = _curve()  # points every 5 EFLOPs up to 200
    with pytest.raises(RetuInputError, match=r"c.json: 2 points after the branch point with compute <= 10 EFLOPs "
                                             r"\(upto 0.05\); the fit needs at least 4"):
        predict_ceiling(x, y, upto=0.05, p_start=P0, source="c.json")


def test_a_trimmed_point_that_leaves_three_to_fit_gives_an_open_interval():
    # Four points after the branch point, the last one far below (one point is not yet a collapse):
    # trimming leaves three, which a 3-parameter curve fits exactly. The noise then comes from the
    # first differences and the interval stays open above, instead of a division by zero (which
    # stopped a live RL run of configs/tiny/findings.yaml).
    x, y = np.arange(5.0), np.array([10.0, 20.0, 25.0, 27.0, 5.0])
    fit = predict_ceiling(x, y)
    assert int(fit.fitted_mask.sum()) == 3 and fit.n_points == 4
    lo, hi = fit.ceiling_bounds
    assert fit.A is None and hi == 100.0 and 20.0 < lo < 27.0
