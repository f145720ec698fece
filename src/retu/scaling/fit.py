"""Robust ceiling fit of one RL curve: P(x) = P_start + (A - P_start) / (1 + (x / C_mid)^-B).

One recipe serves every curve (no per-curve settings); its constants live in `FitOptions`:
1. Collapse: a run has collapsed when it crashed (some point below `crash_frac` = 75% of the running
   maximum) and did not just glitch once (`collapse_points` = 2 or more points more than
   `collapse_drop` = 5 points below the running maximum). Only the points before the first drop
   are fitted, and the fit is flagged. Scattered evaluation glitches are left to steps 2-3.
2. Outliers: a soft-L1 fit (f_scale = noise estimated from first differences) gives residuals; points
   with |Modified Z-score| > 3.5 are rejected.
3. Least Trimmed Squares by C-steps on the rest, h = floor(0.9 n), from the full set and seeded
   random subsets; the subset with the smallest trimmed SSE is fitted last.
4. Saturation. Fitted freely, a curve that is still rising at the end of its data extrapolates to a
   ceiling far above anything observed (up to the bound of 100). The reported fit is therefore
   constrained to have realised at least `saturation_gain` (80%) of its gain A - P_start by the last
   observed point. Whether the data agree is checked out of sample: both the constrained and the
   free fit are refitted on the first 85% of compute and scored on the rest. If the free fit
   predicts that held-out tail clearly better (RMSE below `unsaturated_ratio` x the constrained
   one's), the curve has not saturated inside the observed compute: it is flagged, and its ceiling
   is reported only as the interval [constrained A, free A], never as a plain number.
5. Uncertainty: a 95% percentile interval for A (and PL = A - P_start) from 100 resamples of a
   residual bootstrap of the final fit.

Reference: arXiv 2512.11470 eq. 11 and App. D (held-out RMSE); Iglewicz & Hoaglin (1993) for the
Modified Z-score; Rousseeuw & Van Driessen (2006) for C-steps.
Differs from the paper's kit: the kit fits each curve with hand-picked settings (points used, trim,
outlier removal) and leaves runaway fits; here one recipe with a saturation constraint and an
out-of-sample check flags those runs instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from scipy.optimize import least_squares
from scipy.special import expit, logit

from retu.errors import RetuInputError
from retu.scaling.forms import gain_fraction, sigmoid_power
from retu.scaling.robust import lts_csteps, mz_inliers

N_PARAMS = 3  # A, C_mid, B (P_start is fixed at the measured branch point)


@dataclass(frozen=True)
class FitOptions:
    """The single fitting recipe; each field's help says what it controls."""

    mz_threshold: float = field(default=3.5, metadata={"help": "reject |Modified Z-score| above this"})
    lts_alpha: float = field(default=0.9, metadata={"help": "LTS keeps h = floor(alpha * n) points"})
    lts_random_starts: int = field(default=3, metadata={"help": "random start subsets besides the full set"})
    saturation_gain: float = field(default=0.8, metadata={"help": "min share of the gain realised by the last point"})
    unsaturated_ratio: float = field(default=0.9, metadata={"help": "flag when free tail RMSE < ratio x constrained"})
    holdout_frac: float = field(default=0.15, metadata={"help": "share of compute held out at the end"})
    collapse_drop: float = field(default=5.0, metadata={"help": "points below the running max that count as a drop"})
    collapse_points: int = field(default=2, metadata={"help": "drops needed to call a run collapsed"})
    crash_frac: float = field(default=0.75, metadata={"help": "a collapse needs a point below this x running max"})
    upper: float = field(default=100.0, metadata={"help": "upper bound of the ceiling (accuracy in %)"})
    ci_level: float = field(default=0.95, metadata={"help": "confidence level of the A and PL intervals"})
    n_boot: int = field(default=100, metadata={"help": "bootstrap resamples for the intervals (< 10: none)"})
    seed: int = field(default=0, metadata={"help": "seed of the LTS random starts"})

    def __post_init__(self):
        if not 0.5 < self.lts_alpha <= 1.0:
            raise RetuInputError(f"lts_alpha must be in (0.5, 1], got {self.lts_alpha}")
        if not 0.0 < self.saturation_gain < 1.0:
            raise RetuInputError(f"saturation_gain must be in (0, 1), got {self.saturation_gain}")
        if not 0.0 < self.holdout_frac < 0.5:
            raise RetuInputError(f"holdout_frac must be in (0, 0.5), got {self.holdout_frac}")


@dataclass(frozen=True)
class CeilingFit:
    """Result of `fit_ceiling`. Arrays cover the finite input points with x > 0, in input order.

    `ceiling` is the constrained fit's A; when `saturated` is False it is only the lower end of
    `ceiling_bounds` and `A` (the reported value) is None.
    """

    source: str
    p_start: float
    ceiling: float
    c_mid: float
    slope: float
    ceiling_ci: tuple[float, float]
    ceiling_free: float
    ceiling_bounds: tuple[float, float]
    saturated: bool
    collapsed: bool
    collapse_x: float | None
    gain_at_end: float
    holdout_rmse: float | None
    holdout_rmse_free: float | None
    r2: float
    rmse: float
    n_points: int
    n_dropped: int
    n_outliers: int
    n_trimmed: int
    converged: bool
    stop_reason: str
    x: np.ndarray
    y: np.ndarray
    inlier_mask: np.ndarray
    fitted_mask: np.ndarray
    holdout_x: float | None
    options: FitOptions

    @property
    def A(self) -> float | None:  # noqa: N802 - the paper's symbol
        """The ceiling as a plain number, or None when the curve did not saturate."""
        return self.ceiling if self.saturated else None

    @property
    def PL(self) -> float | None:  # noqa: N802
        """RL plasticity A - P_start, or None when the curve did not saturate."""
        return None if self.A is None else self.A - self.p_start

    @property
    def flagged(self) -> bool:
        return self.collapsed or not self.saturated

    @property
    def at_bounds(self) -> tuple[str, ...]:
        """Parameters the reported fit left on a bound of its search box, e.g. ("B=10",): the data do
        not pin them, so C_mid and B (and possibly A) are not estimates. A step function (all of the
        gain realised at once, C_mid -> 0) shows as "gain at end=1". The saturation constraint
        (gain at end >= options.saturation_gain) binding is by design, not a bound: an unsaturated
        curve is flagged as such."""
        rel = 1e-3
        out = []
        if self.slope <= SLOPE_BOUNDS[0] * (1 + rel) or self.slope >= SLOPE_BOUNDS[1] * (1 - rel):
            out.append(f"B={self.slope:.3g}")
        if self.gain_at_end >= 1.0 - 1e-4:
            out.append("gain at end=1")
        if self.ceiling >= self.options.upper * (1 - rel / 10):
            out.append(f"A={self.options.upper:g}")
        return tuple(out)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[N] performance of the fitted (constrained) curve at compute x."""
        return sigmoid_power(np.asarray(x, dtype=float), self.p_start, self.ceiling, self.c_mid, self.slope)

    def ceiling_text(self) -> str:
        """The ceiling as people should read it: a number, or a bounded interval when unsaturated."""
        if not self.saturated:
            return f">={self.ceiling_bounds[0]:.1f} (unsaturated, <= {self.ceiling_bounds[1]:.1f})"
        flag = " (collapsed)" if self.collapsed else ""
        return f"{self.ceiling:.1f} [{self.ceiling_ci[0]:.1f}, {self.ceiling_ci[1]:.1f}]{flag}"

    def summary(self) -> str:
        hold = "n/a" if self.holdout_rmse is None else f"{self.holdout_rmse:.2f}"
        return (f"{self.source}: A = {self.ceiling_text()}, P_start = {self.p_start:.1f}, "
                f"C_mid = {self.c_mid:.3g}, B = {self.slope:.2f}; {self.n_points} points, "
                f"{self.n_outliers} outliers ({self.n_trimmed} trimmed), R^2 = {self.r2:.2f}, held-out RMSE = {hold}")

    def to_dict(self) -> dict:
        """JSON-safe: the spec'd keys plus diagnostics (arrays as lists)."""
        d = {"source": self.source, "n_points": self.n_points, "P_start": self.p_start, "A": self.A,
             "PL": self.PL, "C_mid": self.c_mid, "B": self.slope, "A_ci": list(self.ceiling_ci),
             "A_bounds": list(self.ceiling_bounds), "saturated": self.saturated, "collapsed": self.collapsed,
             "collapse_x": self.collapse_x, "n_outliers": self.n_outliers, "n_trimmed": self.n_trimmed, "n_dropped": self.n_dropped,
             "holdout_rmse": self.holdout_rmse, "holdout_rmse_free": self.holdout_rmse_free,
             "gain_at_end": self.gain_at_end, "r2": self.r2, "rmse": self.rmse, "converged": self.converged,
             "stop_reason": self.stop_reason, "options": asdict(self.options)}
        return {k: _json_float(v) for k, v in d.items()}


def _json_float(v):
    if isinstance(v, float | np.floating):
        return None if not math.isfinite(v) else round(float(v), 6)
    if isinstance(v, list):
        return [_json_float(e) for e in v]
    return v


# ---------------------------------------------------------------------------------------------------
# Least squares with the saturation parametrisation


@dataclass(frozen=True)
class _Solution:
    theta: np.ndarray  # [3] (A, g_end, B); C_mid follows from g_end
    cost: float
    jac: np.ndarray
    status: int
    message: str


def _c_mid(theta: np.ndarray, x_end: float) -> float:
    """C_mid such that the curve has realised share g_end of its gain at x_end."""
    ceiling, g_end, slope = theta
    return float(x_end * math.exp(-logit(g_end) / slope))


def _predict(theta: np.ndarray, x: np.ndarray, p_start: float, x_end: float) -> np.ndarray:
    ceiling, g_end, slope = theta
    # ln(x / C_mid) = ln(x / x_end) + logit(g_end) / B, so expit(...) = g_end exactly at x_end.
    return p_start + (ceiling - p_start) * expit(slope * np.log(x / x_end) + logit(g_end))


SLOPE_BOUNDS = (0.05, 10.0)
G_END_MAX = 1.0 - 1e-6  # a fit that reaches it is a step function (C_mid -> 0)
A_BELOW_START = 50.0  # the ceiling may lie this far below min(P_start, y)


def _solve(x, y, p_start, x_end, g_min, upper, *, loss="linear", f_scale=1.0, starts=None) -> _Solution:
    """Bounded multistart least squares over (A, g_end, B); g_end >= g_min is the saturation constraint."""
    lo = np.array([min(p_start, y.min()) - A_BELOW_START, g_min, SLOPE_BOUNDS[0]])
    hi = np.array([upper, G_END_MAX, SLOPE_BOUNDS[1]])
    if starts is None:
        top = float(np.max(y))
        starts = [np.array([a, g, b]) for a in (top, top + 4.0)
                  for g in (max(g_min + 0.02, 0.5), 0.97) for b in (0.6, 2.0)]
    best = None
    for th0 in starts:
        th0 = np.clip(th0, lo + 1e-6, hi - 1e-6)
        res = least_squares(lambda th: _predict(th, x, p_start, x_end) - y, th0, bounds=(lo, hi),
                            loss=loss, f_scale=f_scale, x_scale="jac", ftol=1e-10, xtol=1e-10)
        if best is None or res.cost < best.cost:
            best = res
    return _Solution(best.x, float(best.cost), best.jac, int(best.status), str(best.message))


def _noise_scale(y: np.ndarray) -> float:
    """Robust noise sigma from first differences (trend-free): 1.4826 * MAD(diff) / sqrt(2)."""
    d = np.diff(y)
    if len(d) < 2:
        return 1.0
    mad = np.median(np.abs(d - np.median(d)))
    return max(1.4826 * mad / math.sqrt(2.0), 1e-3)


# ---------------------------------------------------------------------------------------------------
# Pieces of the recipe


def detect_collapse(x: np.ndarray, y: np.ndarray, *, drop: float = 5.0, min_points: int = 2,
                    crash_frac: float = 0.75) -> int | None:
    """Index of the first point of a collapse, or None.

    A point is a drop when it lies more than `drop` below the running maximum of the points before
    it. A run has collapsed (at its first drop) when it has at least `min_points` drops and one of
    them is a crash, below `crash_frac` of the running maximum. A lone dip, or glitches of a few
    points, are left to outlier rejection.

    >>> detect_collapse(np.arange(6.0), np.array([70, 75, 76, 69, 76, 40.0]))
    3
    >>> detect_collapse(np.arange(5.0), np.array([70, 75, 60, 76, 64.0])) is None  # no crash
    True
    """
    running = np.maximum.accumulate(np.concatenate([[-np.inf], y[:-1]]))
    drops = np.flatnonzero(y < running - drop)
    crashed = (y < crash_frac * running).any()
    return int(drops[0]) if len(drops) >= min_points and crashed else None


def _lts_subset(x, y, p_start, x_end, opts: FitOptions, warm: np.ndarray) -> np.ndarray:
    """C-steps with the constrained model, warm-started from the robust fit; returns the kept mask."""
    n = len(x)
    h = max(int(math.floor(opts.lts_alpha * n)), N_PARAMS + 1)
    if h >= n:
        return np.ones(n, dtype=bool)
    rng = np.random.default_rng(opts.seed)
    starts = [np.ones(n, dtype=bool)]
    for _ in range(opts.lts_random_starts):
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=h, replace=False)] = True
        starts.append(mask)

    def fit_subset(mask: np.ndarray) -> np.ndarray:
        sol = _solve(x[mask], y[mask], p_start, x_end, opts.saturation_gain, opts.upper, starts=[warm])
        return _predict(sol.theta, x, p_start, x_end) - y

    return lts_csteps(fit_subset, n, h, starts=starts).subset


def _holdout(x, y, p_start, opts: FitOptions) -> tuple[float | None, float | None, float | None]:
    """Tail RMSE of the constrained and the free fit refitted on the first (1 - holdout_frac) of compute."""
    cut = x.max() * (1.0 - opts.holdout_frac)
    train, test = x <= cut, x > cut
    if train.sum() < N_PARAMS + 2 or test.sum() < 2:
        return None, None, None
    x_end = float(x[train].max())
    out = []
    for g_min in (opts.saturation_gain, 1e-3):
        sol = _solve(x[train], y[train], p_start, x_end, g_min, opts.upper)
        pred = _predict(sol.theta, x[test], p_start, x_end)
        out.append(float(np.sqrt(np.mean((pred - y[test]) ** 2))))
    return out[0], out[1], float(cut)


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


def _ceiling_ci(final: _Solution, x, y, p_start, x_end, opts: FitOptions) -> tuple[float, float]:
    """Percentile interval for A from a residual bootstrap of the final (constrained) fit.

    Residuals are centred and inflated by sqrt(n / (n - 3)) and by the LTS variance factor (the
    kept residuals are the small ones); each resample is refitted from the final parameters. Those
    refits are least squares on the kept points, while A comes from trimming: at normal errors the
    LTS estimator's asymptotic variance is 1 / (alpha - 2 q phi(q)) against 1 / alpha for least
    squares on the kept share (Rousseeuw & Leroy 1987), so the draws' spread around A is widened by
    1 / sqrt(lts_variance_factor(alpha)) (x1.27 at alpha 0.9). Measured coverage:
    benchmarks/bench_fit_coverage.py.
    """
    n = len(x)
    if n <= N_PARAMS or opts.n_boot < 10:
        return (math.nan, math.nan)
    fitted = _predict(final.theta, x, p_start, x_end)
    resid = y - fitted
    resid = (resid - resid.mean()) * math.sqrt(n / (n - N_PARAMS) / lts_variance_factor(opts.lts_alpha))
    rng = np.random.default_rng(opts.seed)
    draws = np.array([_solve(x, fitted + rng.choice(resid, size=n), p_start, x_end, opts.saturation_gain,
                             opts.upper, starts=[final.theta]).theta[0] for _ in range(opts.n_boot)])
    draws = final.theta[0] + (draws - final.theta[0]) / math.sqrt(lts_variance_factor(opts.lts_alpha))
    tail = (1.0 - opts.ci_level) / 2.0 * 100.0
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return (float(lo), float(hi))


# ---------------------------------------------------------------------------------------------------
# The API


def _validate(x, y, source: str) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise RetuInputError(f"{source}: compute and performance must be 1-D of equal length, got {x.shape} and {y.shape}")
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        raise RetuInputError(f"{source}: no finite (compute, performance) points")
    x, y = x[finite], y[finite]
    if (x < 0).any():
        raise RetuInputError(f"{source}: negative compute at point {int(np.flatnonzero(x < 0)[0])} ({x[x < 0][0]:g})")
    if (np.diff(x) <= 0).any():
        i = int(np.flatnonzero(np.diff(x) <= 0)[0]) + 1
        raise RetuInputError(f"{source}: compute is not increasing at point {i} ({x[i - 1]:g} then {x[i]:g})")
    return x, y, int((~finite).sum())


def fit_ceiling(x, y, *, p_start: float | None = None, source: str = "curve",
                options: FitOptions | None = None) -> CeilingFit:
    """Fit the sigmoidal power law robustly and say whether its ceiling is trustworthy.

    Args:
        x: [N] compute since the branch point (EFLOPs), increasing, >= 0.
        y: [N] performance (accuracy in %). NaN rows are dropped and counted.
        p_start: performance at the branch point; default: y at x == 0 (required if absent).
        source: name used in error messages and the summary.
        options: the recipe constants (defaults: FitOptions()).

    Returns:
        A frozen CeilingFit; see the module docstring for the recipe.
    """
    opts = options or FitOptions()
    x, y, n_dropped = _validate(x, y, source)
    if p_start is None:
        if x[0] != 0:
            raise RetuInputError(f"{source}: no point at compute 0 and no p_start given")
        p_start = float(y[0])
    pos = x > 0
    x, y = x[pos], y[pos]
    if len(x) < N_PARAMS + 1:
        raise RetuInputError(f"{source}: {len(x)} points after the branch point; the fit needs at least {N_PARAMS + 1}")
    onset = detect_collapse(x, y, drop=opts.collapse_drop, min_points=opts.collapse_points,
                            crash_frac=opts.crash_frac)
    usable = np.arange(len(x)) < (onset if onset is not None else len(x))
    if usable.sum() < N_PARAMS + 1:
        raise RetuInputError(f"{source}: only {int(usable.sum())} points before the collapse; cannot fit")
    xu, yu = x[usable], y[usable]
    x_end = float(xu.max())
    f_scale = _noise_scale(yu)
    robust = _solve(xu, yu, p_start, x_end, opts.saturation_gain, opts.upper, loss="soft_l1", f_scale=f_scale)
    inl = mz_inliers(_predict(robust.theta, xu, p_start, x_end) - yu, opts.mz_threshold)
    keep = np.zeros(len(xu), dtype=bool)
    keep[np.flatnonzero(inl)[_lts_subset(xu[inl], yu[inl], p_start, x_end, opts, robust.theta)]] = True
    xf, yf = xu[keep], yu[keep]
    final = _solve(xf, yf, p_start, x_end, opts.saturation_gain, opts.upper, starts=None)
    free = _solve(xf, yf, p_start, x_end, 1e-3, opts.upper)
    hold_c, hold_f, cut = _holdout(xf, yf, p_start, opts)
    unsaturated = hold_c is not None and hold_f < opts.unsaturated_ratio * hold_c and free.theta[0] > final.theta[0]
    ceiling, c_mid, slope = float(final.theta[0]), _c_mid(final.theta, x_end), float(final.theta[2])
    resid = _predict(final.theta, xf, p_start, x_end) - yf
    ss_tot = float(np.sum((yf - yf.mean()) ** 2))
    inlier_mask = np.zeros(len(x), dtype=bool)
    inlier_mask[np.flatnonzero(usable)[inl]] = True
    fitted_mask = np.zeros(len(x), dtype=bool)
    fitted_mask[np.flatnonzero(usable)[keep]] = True
    return CeilingFit(
        source=source, p_start=p_start, ceiling=ceiling, c_mid=c_mid, slope=slope,
        ceiling_ci=_ceiling_ci(final, xf, yf, p_start, x_end, opts), ceiling_free=float(free.theta[0]),
        ceiling_bounds=(ceiling, max(ceiling, float(free.theta[0]))), saturated=not unsaturated,
        collapsed=onset is not None, collapse_x=None if onset is None else float(x[onset]),
        gain_at_end=gain_fraction(x_end, c_mid, slope), holdout_rmse=hold_c, holdout_rmse_free=hold_f,
        r2=1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else math.nan,
        rmse=float(np.sqrt(np.mean(resid ** 2))), n_points=len(x), n_dropped=n_dropped,
        n_outliers=int((~inl).sum()), n_trimmed=int(inl.sum() - keep.sum()), converged=final.status > 0, stop_reason=final.message,
        x=x, y=y, inlier_mask=inlier_mask, fitted_mask=fitted_mask, holdout_x=cut, options=opts)
