"""The prior from finished sibling curves: which siblings count, its location, scale and remaining gain."""

import math

import numpy as np
import pytest

from retu.scaling import Curve, FitOptions, build_sibling_prior, fit_ceiling, sibling_prior_for
from retu.scaling.forms import sigmoid_power

X = np.linspace(5.0, 200.0, 40)
FAST = FitOptions(n_boot=0)


def _fit(c_mid=20.0, slope=1.5, ceiling=80.0, source="c.json"):
    return fit_ceiling(X, sigmoid_power(X, 60.0, ceiling, c_mid, slope), p_start=60.0, source=source, options=FAST)


def _curve(source, scene):
    return Curve(source, "rl", scene, None, None, X, X, 60.0, None, 0)


def test_location_scale_and_noise_from_the_siblings():
    fits = [_fit(c_mid=c, slope=b) for c, b in ((10.0, 1.0), (20.0, 1.5), (40.0, 2.0))]
    prior = build_sibling_prior(fits)
    # Exact curves: each fit recovers its (C_mid, B); the location is the mean of the logs.
    assert math.exp(prior.log_c_mid) == pytest.approx(20.0, rel=1e-3)
    assert prior.log_slope == pytest.approx(np.mean(np.log([1.0, 1.5, 2.0])), abs=1e-3)
    # Predictive scale: sd of ln C_mid (ln 2 steps: sd = ln 2) times sqrt(1 + 1/3).
    assert prior.scale_log_c_mid == pytest.approx(math.log(2.0) * math.sqrt(4 / 3), rel=1e-3)
    assert prior.dof == 2 and prior.n_curves == 3
    assert prior.noise < 0.01  # noiseless curves
    assert prior.remaining_gain(1e9) == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def test_flagged_and_bound_fits_are_not_siblings():
    good = [_fit(c_mid=15.0), _fit(c_mid=25.0)]
    rising = _fit(c_mid=2000.0, slope=1.0, ceiling=95.0)  # unsaturated, flagged
    assert rising.flagged
    assert build_sibling_prior([good[0], rising]) is None
    assert build_sibling_prior([*good, rising]).n_curves == 2


def test_a_curve_takes_its_own_scene_and_never_itself():
    fits = {name: _fit(c_mid=c, source=name) for name, c in (("a1", 10.0), ("a2", 12.0), ("a3", 14.0),
                                                              ("b1", 40.0), ("b2", 50.0))}
    siblings = [(_curve(n, n[0]), f) for n, f in fits.items()]
    prior = sibling_prior_for(_curve("a1", "a"), siblings)
    assert prior.n_curves == 2 and math.exp(prior.log_c_mid) == pytest.approx(math.sqrt(12.0 * 14.0), rel=1e-3)
    # One sibling in its scene is too few: then all the others (a's and b's) make the prior.
    assert sibling_prior_for(_curve("b1", "b"), siblings).n_curves == 4
    assert sibling_prior_for(_curve("z", "z"), siblings[:1]) is None


def test_penalty_is_zero_at_the_prior_centre_and_grows_away_from_it():
    prior = build_sibling_prior([_fit(c_mid=15.0), _fit(c_mid=25.0)])
    x_end = 100.0
    centre_c, centre_b = math.exp(prior.log_c_mid), math.exp(prior.log_slope)
    g_end = 1.0 / (1.0 + (x_end / centre_c) ** -centre_b)
    remaining = float(prior.remaining_gain(x_end).mean())
    ceiling = 60.0 + remaining / (1.0 - g_end)  # the ceiling whose remaining gain at x_end is the siblings' mean
    penalty = prior.penalty(60.0, x_end)
    assert penalty(np.array([ceiling, g_end, centre_b])) == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    # 5 points more ceiling leave 5 (1 - g_end) more gain after x_end: z = that / the remaining-gain
    # scale (2 siblings: sd * sqrt(3/2), at least the noise), through the t residual with 1 dof.
    rem = prior.remaining_gain(x_end)
    z = 5.0 * (1.0 - g_end) / max(rem.std(ddof=1) * math.sqrt(1.5), prior.noise)
    assert penalty(np.array([ceiling + 5.0, g_end, centre_b]))[2] == pytest.approx(math.sqrt(2 * math.log1p(z * z)))
    assert penalty(np.array([ceiling + 5.0, g_end, centre_b]))[2] > penalty(np.array([ceiling + 1.0, g_end, centre_b]))[2] > 0
