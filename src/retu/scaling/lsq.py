"""Least squares of the sigmoidal power law in the saturation parametrisation theta = (A, g_end, B).

g_end is the share of the gain A - P_start that the curve has realised at x_end (the last fitted
compute), so the saturation constraint of the finished-curve recipe is a plain bound g_end >= g_min,
and C_mid = x_end * exp(-logit(g_end) / B) follows from theta. Shared by `retu.scaling.fit`
(finished curves) and `retu.scaling.early` (unfinished curves: a shape prior and a profiled A).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit, logit

N_PARAMS = 3  # A, C_mid, B (P_start is fixed at the measured branch point)
SLOPE_BOUNDS = (0.05, 10.0)
G_END_MAX = 1.0 - 1e-6  # a fit that reaches it is a step function (C_mid -> 0)
A_BELOW_START = 50.0  # the ceiling may lie this far below min(P_start, y), down to ACCURACY_FLOOR
ACCURACY_FLOOR = 0.0  # %: no ceiling below it (as `upper` caps it above), unless the data already are
G_FREE = 1e-3  # g_end bound of an unconstrained fit


@dataclass(frozen=True)
class Solution:
    """The best of a multistart fit: theta [3] = (A, g_end, B), cost = 0.5 * sum of squared residuals
    (prior terms included), and least_squares' status and message."""

    theta: np.ndarray
    cost: float
    status: int
    message: str


def c_mid_of(theta: np.ndarray, x_end: float) -> float:
    """C_mid (EFLOPs) such that the curve has realised share g_end of its gain at x_end.

    >>> round(c_mid_of(np.array([80.0, 0.5, 1.5]), 20.0), 6)  # half the gain at x_end: C_mid = x_end
    20.0
    """
    ceiling, g_end, slope = theta
    return float(x_end * math.exp(-logit(g_end) / slope))


def predict_theta(theta: np.ndarray, x: np.ndarray, p_start: float, x_end: float) -> np.ndarray:
    """[N] performance (%) at compute x [N] (EFLOPs) of the curve theta = (A, g_end, B)."""
    ceiling, g_end, slope = theta
    # ln(x / C_mid) = ln(x / x_end) + logit(g_end) / B, so expit(...) = g_end exactly at x_end.
    return p_start + (ceiling - p_start) * expit(slope * np.log(x / x_end) + logit(g_end))


def jacobian_theta(theta: np.ndarray, x: np.ndarray, p_start: float, x_end: float) -> np.ndarray:
    """[N, 3] derivatives of `predict_theta` at compute x [N] with respect to (A, g_end, B).

    With s = expit(z), z = B ln(x / x_end) + logit(g_end): df/dA = s, df/dz = (A - P_start) s (1 - s),
    dz/dg_end = 1 / (g_end (1 - g_end)), dz/dB = ln(x / x_end).

    >>> jacobian_theta(np.array([80.0, 0.5, 1.5]), np.array([20.0]), 40.0, 20.0).round(6).tolist()
    [[0.5, 40.0, 0.0]]
    """
    ceiling, g_end, slope = theta
    log_x = np.log(x / x_end)
    s = expit(slope * log_x + logit(g_end))
    dz = (ceiling - p_start) * s * (1.0 - s)
    return np.column_stack([s, dz / (g_end * (1.0 - g_end)), dz * log_x])


def default_starts(y: np.ndarray, g_min: float) -> list[np.ndarray]:
    """The 8 default starting thetas: A at the top point or 4 above, g_end mid or late, B shallow or steep."""
    top = float(np.max(y))
    return [np.array([a, g, b]) for a in (top, top + 4.0) for g in (max(g_min + 0.02, 0.5), 0.97) for b in (0.6, 2.0)]


def ceiling_floor(p_start: float, y: np.ndarray) -> float:
    """Lower bound (%) of the ceiling A for a curve starting at p_start with points y [n]: A_BELOW_START
    under the lowest of them, but not below ACCURACY_FLOOR unless the data already are.

    >>> ceiling_floor(70.0, np.array([72.0, 60.0])), ceiling_floor(8.5, np.array([6.5, 8.0]))
    (10.0, 0.0)
    """
    low = min(float(p_start), float(np.min(y)))
    return max(low - A_BELOW_START, min(low, ACCURACY_FLOOR))


def solve(x, y, p_start, x_end, g_min, upper, *, loss="linear", f_scale=1.0, starts=None, sigma: float = 1.0,
          penalty: Callable[[np.ndarray], np.ndarray] | None = None, ceiling: float | None = None) -> Solution:
    """Bounded multistart least squares over theta = (A, g_end, B), g_end >= g_min.

    Args:
        x, y: [n] compute (EFLOPs) and performance (%) of the fitted points.
        p_start: performance at the branch point (%).
        x_end: compute at which g_end is measured (EFLOPs).
        g_min: lower bound of g_end (the saturation constraint; G_FREE for none).
        upper: upper bound of A (%).
        loss, f_scale: scipy least_squares' robust loss, on every residual ('linear' with a penalty).
        starts: initial thetas [3] (a default grid when None); with `ceiling` only their (g_end, B) are used.
        sigma: data residuals are divided by it (noise sigma, %), so the cost is a chi-square / 2.
        penalty: theta -> extra residuals appended to the data ones (a prior, in sigma units).
        ceiling: hold A at this value and fit (g_end, B) only (a profile of A).
    """
    lo = np.array([ceiling_floor(p_start, y), g_min, SLOPE_BOUNDS[0]])
    hi = np.array([upper, G_END_MAX, SLOPE_BOUNDS[1]])
    starts = default_starts(y, g_min) if starts is None else starts
    free = slice(0, 3) if ceiling is None else slice(1, 3)

    def full(p: np.ndarray) -> np.ndarray:
        return p if ceiling is None else np.concatenate([[ceiling], p])

    def residuals(p: np.ndarray) -> np.ndarray:
        r = (predict_theta(full(p), x, p_start, x_end) - y) / sigma
        return r if penalty is None else np.concatenate([r, penalty(full(p))])

    def jacobian(p: np.ndarray) -> np.ndarray:
        return jacobian_theta(full(p), x, p_start, x_end)[:, free] / sigma

    best = None
    for th0 in starts:
        p0 = np.clip(np.asarray(th0, dtype=float)[free], lo[free] + 1e-6, hi[free] - 1e-6)
        # A prior's residuals have no derivatives here: the solver differences them.
        res = least_squares(residuals, p0, jac=jacobian if penalty is None else "2-point", bounds=(lo[free], hi[free]),
                            loss=loss, f_scale=f_scale, x_scale="jac", ftol=1e-10, xtol=1e-10)
        if best is None or res.cost < best.cost:
            best = res
    return Solution(full(best.x), float(best.cost), int(best.status), str(best.message))


def r_squared(resid: np.ndarray, y: np.ndarray) -> float:
    """1 - SSE / SS_tot of residuals [n] of the points y [n]; NaN when y is constant."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else math.nan
