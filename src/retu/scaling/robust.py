"""Robust-regression building blocks: Modified Z-score outlier rejection, LTS concentration steps and
noise scales.

All are independent of the curve form: `lts_csteps` takes a function that fits a subset of points
and returns residuals for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

MZ_CONSTANT = 0.6745  # Phi^-1(0.75): makes MAD a consistent estimate of sigma for normal residuals


def modified_z_scores(residuals: np.ndarray) -> np.ndarray:
    """Iglewicz-Hoaglin modified Z-scores, 0.6745 * (r - median) / MAD.

    Args:
        residuals: [N] residuals.

    Returns:
        [N] scores; all zeros when MAD is 0 (more than half the residuals identical).
        Example below: median 0.5, MAD 1.5, so 40 scores 0.6745 * 39.5 / 1.5 = 17.762.

    >>> modified_z_scores(np.array([0.0, 1.0, -1.0, 2.0, -2.0, 40.0])).round(3).tolist()
    [-0.225, 0.225, -0.674, 0.674, -1.124, 17.762]
    """
    r = np.asarray(residuals, dtype=float)
    med = np.median(r)
    mad = np.median(np.abs(r - med))
    if mad == 0:
        return np.zeros_like(r)
    return MZ_CONSTANT * (r - med) / mad


def mz_inliers(residuals: np.ndarray, threshold: float = 3.5) -> np.ndarray:
    """[N] bool mask of points whose |modified Z-score| <= threshold (3.5: Iglewicz & Hoaglin 1993)."""
    return np.abs(modified_z_scores(residuals)) <= threshold


@dataclass(frozen=True)
class LtsResult:
    """Best subset found by concentration steps: its mask, trimmed SSE and C-steps taken."""

    subset: np.ndarray
    trimmed_sse: float
    n_csteps: int
    converged: bool


def lts_csteps(fit_subset: Callable[[np.ndarray], np.ndarray], n: int, h: int, *,
               starts: list[np.ndarray], max_csteps: int = 20) -> LtsResult:
    """Least Trimmed Squares by concentration steps (Rousseeuw & Van Driessen 2006).

    From each start subset: fit it, keep the h points with the smallest squared residuals, refit,
    until the subset stops changing. The subset with the smallest trimmed SSE wins.

    Args:
        fit_subset: maps a [n] bool subset mask to [n] residuals of all points under that fit.
        n: number of points.
        h: points kept (h = floor(alpha * n)), n/2 < h <= n.
        starts: initial [n] bool subset masks.
        max_csteps: cap on concentration steps per start.
    """
    best: LtsResult | None = None
    for subset in starts:
        subset, converged, steps = subset.copy(), False, 0
        for steps in range(1, max_csteps + 1):
            sq = fit_subset(subset) ** 2
            new = np.zeros(n, dtype=bool)
            new[np.argsort(sq, kind="stable")[:h]] = True
            if (new == subset).all():
                converged = True
                break
            subset = new
        sse = float(np.sort(fit_subset(subset) ** 2)[:h].sum())
        if best is None or sse < best.trimmed_sse:
            best = LtsResult(subset, sse, steps, converged)
    return best


def lts_variance_factor(alpha: float) -> float:
    """E[r^2 | r among the alpha share smallest |r|] / sigma^2 for normal residuals.

    The residuals LTS keeps are the small ones, so their variance underestimates sigma^2 by this
    factor (1 - 2 q phi(q) / alpha, q = Phi^-1((1 + alpha) / 2)); dividing by it restores it.

    >>> round(lts_variance_factor(0.9), 4), lts_variance_factor(1.0)
    (0.623, 1.0)
    """
    if alpha >= 1.0:
        return 1.0
    q = stats.norm.ppf((1.0 + alpha) / 2.0)
    return float(1.0 - 2.0 * q * stats.norm.pdf(q) / alpha)


def noise_scale(y: np.ndarray) -> float:
    """Robust noise sigma of a curve from its first differences (trend-free): 1.4826 * MAD(diff) / sqrt(2).

    Args:
        y: [N] performance in order of compute.

    Returns:
        Sigma in the units of y; 1.0 when there are fewer than 3 points, at least 1e-3.

    >>> round(float(noise_scale(np.array([70.0, 71.0, 70.0, 71.0, 70.0]))), 4)  # diffs +-1: MAD 1 -> 1.4826 / sqrt(2)
    1.0484
    """
    d = np.diff(y)
    if len(d) < 2:
        return 1.0
    mad = np.median(np.abs(d - np.median(d)))
    return max(1.4826 * mad / math.sqrt(2.0), 1e-3)
