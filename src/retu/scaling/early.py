"""Ceiling of an RL curve that is still running: a point estimate with an interval, or a lower bound.

`predict_ceiling` fits the points with compute <= upto x the curve's last compute. Such a curve has
no reason to have realised most of its gain yet, so the finished recipe's saturation constraint (and
its bootstrap around a constrained fit, which pulled truncated ceilings onto their last points with
narrow intervals) is replaced by:
1. Points: steps 1-3 of `retu.scaling.fit` (collapse, Modified Z-score outliers, LTS), with fits free
   of the saturation constraint.
2. Noise sigma: the larger of the residual sigma of the free fit (n - 3 dof, corrected for LTS
   trimming) and a second estimate: the siblings' pooled sigma with a prior, else the
   first-difference sigma (`noise_scale`).
3. Fit: least squares of (A, g_end, B), with a prior (`retu.scaling.prior`) its three t-residuals
   appended: the maximum a posteriori fit. Without one, the free fit.
4. Interval: profile likelihood of A, {A : min over (g_end, B) of chi2(A) - chi2_min <= q}, with
   q the chi-square(1) quantile at options.ci_level when sigma comes from the siblings' many
   points, else the F(1, n - 3) quantile (sigma from this curve's few points).
5. With a prior, the interval also spans the fitted level at x_end plus the siblings' prediction
   interval of the gain still to come: curves often keep rising after a stretch that looks
   saturated, which a sigmoid fitted to that stretch cannot foresee but the siblings' later
   points show.
6. Number or bound: when the interval closes below options.upper, A is the fit's ceiling
   (`saturated` True); otherwise the data cannot pin the ceiling: A is None and the interval's lower
   end is its lower bound (`ceiling_bounds` = the interval).
With upto = 1 this is the unfinished recipe on every point; `fit_ceiling` stays the finished one.

Reference: Venzon & Moolgavkar (1988) and Bates & Watts (1988) ch. 6 for profile-likelihood intervals
of nonlinear regression. Measured (authors' curves and simulated ones): benchmarks/bench_early.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import expit

from retu.errors import RetuInputError
from retu.scaling.fit import CeilingFit, FitOptions, prepare_points, select_points
from retu.scaling.lsq import (G_END_MAX, G_FREE, N_PARAMS, Solution, c_mid_of, ceiling_floor, default_starts,
                              predict_theta, r_squared, solve)
from retu.scaling.prior import SiblingPrior
from retu.scaling.robust import lts_variance_factor, noise_scale

PROFILE_XTOL = 0.01  # accuracy points: the interval's ends are found to this precision

# ---------------------------------------------------------------------------------------------------
# Pieces


def check_upto(upto: float, name: str = "upto") -> float:
    """`upto` as a float in (0, 1], or a RetuInputError naming it (as `name`).

    >>> check_upto(1)
    1.0
    >>> check_upto(1.5, "--upto")
    Traceback (most recent call last):
    retu.errors.RetuInputError: --upto must be a fraction of the curve's compute in (0, 1], got 1.5
    """
    if not isinstance(upto, int | float) or isinstance(upto, bool) or not 0.0 < upto <= 1.0:
        raise RetuInputError(f"{name} must be a fraction of the curve's compute in (0, 1], got {upto!r}")
    return float(upto)


def _prior_starts(prior: SiblingPrior, top: float, x_end: float) -> list[np.ndarray]:
    """Extra starts at the prior's median shape (its g_end at x_end), for A near and above the top."""
    slope = math.exp(prior.log_slope)
    g_end = float(np.clip(expit(slope * (math.log(x_end) - prior.log_c_mid)), G_FREE * 2, G_END_MAX - 1e-6))
    return [np.array([a, g_end, slope]) for a in (top, top + 4.0)]


def _noise(free: Solution, xf, yf, p_start, x_end, alpha: float | None, prior: SiblingPrior | None) -> float:
    """Step 2: noise sigma (accuracy points) of the fitted points; alpha: the LTS share kept, None if untrimmed."""
    resid = predict_theta(free.theta, xf, p_start, x_end) - yf
    dof = len(xf) - N_PARAMS  # 0 when trimming leaves 3 points: they fit exactly and say nothing of the noise
    variance = float(np.sum(resid ** 2)) / dof / (1.0 if alpha is None else lts_variance_factor(alpha)) if dof else 0.0
    own = math.sqrt(variance)
    return max(own, prior.noise if prior is not None else noise_scale(yf))


def _best_fit(xf, yf, p_start, x_end, free: Solution, sigma: float, prior: SiblingPrior | None, penalty,
              opts: FitOptions) -> tuple[Solution, float]:
    """Step 3 and the threshold of step 4: the best fit (cost in chi-square / 2 units) and q."""
    if prior is None:
        best = Solution(free.theta, free.cost / sigma ** 2, free.status, free.message)
        dof = len(xf) - N_PARAMS  # with none left, sigma is the first-difference estimate, taken as known
        return best, float(stats.f.ppf(opts.ci_level, 1, dof) if dof else stats.chi2.ppf(opts.ci_level, 1))
    starts = [*default_starts(yf, G_FREE), *_prior_starts(prior, float(yf.max()), x_end), free.theta]
    best = solve(xf, yf, p_start, x_end, G_FREE, opts.upper, sigma=sigma, penalty=penalty, starts=starts)
    return best, float(stats.chi2.ppf(opts.ci_level, 1))


def profile_interval(xf, yf, p_start, x_end, *, best: Solution, sigma: float, threshold: float, upper: float,
                     penalty=None) -> tuple[float, float]:
    """Step 4: the profile-likelihood interval of A around the best fit.

    Args:
        xf, yf: [n] fitted compute (EFLOPs) and performance (%).
        p_start, x_end: branch-point performance (%) and the compute where g_end is measured.
        best: the (penalised) best fit; its 2 * cost is chi2_min.
        sigma: noise sigma (%); threshold: q, the allowed rise of chi2.
        upper: the largest ceiling considered (%); penalty: the prior's residuals or None.

    Returns:
        (lo, hi) in %; hi == upper when the profile never rises by q up to `upper`.
    """
    chi2_min = 2.0 * best.cost
    a_hat = float(best.theta[0])
    warm = [best.theta]

    def rise(ceiling: float) -> float:
        # Continuation: start from the neighbouring profile point, the best fit and a neutral shape.
        starts = [warm[-1], best.theta, np.array([ceiling, 0.5, 1.0])]
        sol = solve(xf, yf, p_start, x_end, G_FREE, upper, starts=starts, sigma=sigma, penalty=penalty, ceiling=ceiling)
        warm.append(sol.theta)
        return 2.0 * sol.cost - chi2_min - threshold

    def end(limit: float) -> float:
        """Walk from a_hat towards `limit` in doubling steps until the profile has risen by q, then refine."""
        warm.append(best.theta)
        inner, step = a_hat, math.copysign(max(sigma, 0.25), limit - a_hat)
        while inner != limit:
            outer = min(inner + step, limit) if step > 0 else max(inner + step, limit)
            if rise(outer) > 0:
                return brentq(rise, inner, outer, xtol=PROFILE_XTOL)
            inner, step = outer, 2.0 * step
        return limit

    # The interval spans the same box as the fit: down to ceiling_floor (accuracy stops at 0), up to `upper`.
    lo, hi = end(ceiling_floor(p_start, yf)), end(upper)
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------
# The API


def predict_ceiling(x, y, *, upto: float = 1.0, p_start: float | None = None, prior: SiblingPrior | None = None,
                    source: str = "curve", options: FitOptions | None = None) -> CeilingFit:
    """The ceiling of a run still going, from its points up to a fraction of its compute.

    Args:
        x: [N] compute since the branch point (EFLOPs), increasing, >= 0.
        y: [N] performance (accuracy in %). NaN rows are dropped and counted.
        upto: fit the points with compute <= upto x the last finite point's compute, in (0, 1].
        p_start: performance at the branch point; default: y at x == 0 (required if absent).
        prior: prior from finished sibling curves (`retu.scaling.prior`), or None to fit alone.
        source: name used in error messages and the summary.
        options: the recipe constants (FitOptions; n_boot, saturation_gain and the hold-out are unused).

    Returns:
        A frozen CeilingFit with `upto` set: `A` a number with its interval `ceiling_ci`, or None
        with `ceiling_bounds` = (lower bound, upper end of the interval); see the module docstring.
    """
    opts = options or FitOptions()
    upto = check_upto(upto)
    x, y, p_start, n_dropped = prepare_points(x, y, p_start, source)
    cut = upto * float(x[-1])
    keep = x <= cut
    sel = select_points(x[keep], y[keep], p_start, opts, G_FREE, source=source,
                        scope=f" with compute <= {cut:.4g} EFLOPs (upto {upto:g})")
    x_end, xf, yf = sel.x_end, sel.x[sel.fitted_mask], sel.y[sel.fitted_mask]
    free = solve(xf, yf, p_start, x_end, G_FREE, opts.upper)
    sigma = _noise(free, xf, yf, p_start, x_end, opts.lts_alpha if sel.n_trimmed else None, prior)
    penalty = None if prior is None else prior.penalty(p_start, x_end)
    best, threshold = _best_fit(xf, yf, p_start, x_end, free, sigma, prior, penalty, opts)
    lo, hi = profile_interval(xf, yf, p_start, x_end, best=best, sigma=sigma, threshold=threshold,
                              upper=opts.upper, penalty=penalty)
    if prior is not None:  # step 5: also what the siblings gained after x_end, on top of the fitted level
        level = float(predict_theta(best.theta, np.array([x_end]), p_start, x_end)[0])
        gain_lo, gain_hi = prior.remaining_interval(x_end, opts.ci_level)
        lo, hi = min(lo, level + gain_lo), min(max(hi, level + gain_hi), opts.upper)
    ceiling, c_mid, slope = float(best.theta[0]), c_mid_of(best.theta, x_end), float(best.theta[2])
    resid = predict_theta(best.theta, xf, p_start, x_end) - yf
    return CeilingFit(
        source=source, p_start=p_start, ceiling=ceiling, c_mid=c_mid, slope=slope, ceiling_ci=(lo, hi),
        ceiling_free=float(free.theta[0]), ceiling_bounds=(lo, hi), saturated=hi < opts.upper,
        collapsed=sel.onset is not None, collapse_x=None if sel.onset is None else float(sel.x[sel.onset]),
        gain_at_end=float(best.theta[1]), holdout_rmse=None, holdout_rmse_free=None, r2=r_squared(resid, yf),
        rmse=float(np.sqrt(np.mean(resid ** 2))), n_points=len(sel.x), n_dropped=n_dropped,
        n_outliers=sel.n_outliers, n_trimmed=sel.n_trimmed, converged=best.status > 0, stop_reason=best.message,
        x=sel.x, y=sel.y, inlier_mask=sel.inlier_mask, fitted_mask=sel.fitted_mask, holdout_x=None, options=opts,
        upto=upto, prior_curves=0 if prior is None else prior.n_curves)
