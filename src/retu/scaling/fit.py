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

from retu.errors import RetuInputError
from retu.scaling.forms import gain_fraction, sigmoid_power
from retu.scaling.lsq import (G_FREE, N_PARAMS, SLOPE_BOUNDS, Solution, c_mid_of, ceiling_floor, predict_theta,
                              r_squared, solve)
from retu.scaling.robust import lts_csteps, lts_variance_factor, mz_inliers, noise_scale
from retu.series import increasing_series


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
    """Result of `fit_ceiling` (or `predict_ceiling`, upto set). Arrays cover the finite input points
    with x > 0 (up to the cut), in input order.

    `ceiling` is the reported fit's A (fit_ceiling: the constrained fit; predict_ceiling: the maximum a
    posteriori one); when `saturated` is False it is only the lower end of `ceiling_bounds` and `A`
    (the reported value) is None. `prior_curves` counts the sibling fits behind the prior of an
    unfinished fit (0: none).
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
    upto: float | None = None
    prior_curves: int = 0

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
        floor = ceiling_floor(self.p_start, self.y[self.fitted_mask])
        if self.ceiling <= floor + rel:
            out.append(f"A={floor:g}")
        return tuple(out)

    @property
    def open_below(self) -> bool:
        """True when the fit did not saturate and the lower end of `ceiling_bounds` is the search box's
        floor (`ceiling_floor`): the data set no lower bound on the ceiling, only the box does. A
        curve that stays near P_start does this: with little of its gain realised, any ceiling fits."""
        return not self.saturated and self.ceiling_bounds[0] <= ceiling_floor(self.p_start, self.y[self.fitted_mask])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[N] performance of the fitted (constrained) curve at compute x."""
        return sigmoid_power(np.asarray(x, dtype=float), self.p_start, self.ceiling, self.c_mid, self.slope)

    def ceiling_text(self) -> str:
        """The ceiling as people should read it: a number, or a bounded interval when unsaturated."""
        if self.open_below:
            lo, hi = self.ceiling_bounds
            return f"not pinned (unsaturated; the whole search range {lo:.1f}-{hi:.1f} fits)"
        if not self.saturated:
            return f">={self.ceiling_bounds[0]:.1f} (unsaturated, <= {self.ceiling_bounds[1]:.1f})"
        flag = " (collapsed)" if self.collapsed else ""
        return f"{self.ceiling:.1f} [{self.ceiling_ci[0]:.1f}, {self.ceiling_ci[1]:.1f}]{flag}"

    def summary(self) -> str:
        hold = "n/a" if self.holdout_rmse is None else f"{self.holdout_rmse:.2f}"
        early = "" if self.upto is None else f" (first {self.upto:g} of compute, prior from {self.prior_curves} curves)"
        return (f"{self.source}{early}: A = {self.ceiling_text()}, P_start = {self.p_start:.1f}, "
                f"C_mid = {self.c_mid:.3g}, B = {self.slope:.2f}; {self.n_points} points, "
                f"{self.n_outliers} outliers ({self.n_trimmed} trimmed), R^2 = {self.r2:.2f}, held-out RMSE = {hold}")

    def to_dict(self) -> dict:
        """JSON-safe: the spec'd keys plus diagnostics (arrays as lists)."""
        d = {"source": self.source, "n_points": self.n_points, "P_start": self.p_start, "A": self.A,
             "PL": self.PL, "C_mid": self.c_mid, "B": self.slope, "A_ci": list(self.ceiling_ci),
             "A_bounds": list(self.ceiling_bounds), "open_below": self.open_below, "saturated": self.saturated,
             "collapsed": self.collapsed, "collapse_x": self.collapse_x, "n_outliers": self.n_outliers,
             "n_trimmed": self.n_trimmed, "n_dropped": self.n_dropped,
             "holdout_rmse": self.holdout_rmse, "holdout_rmse_free": self.holdout_rmse_free,
             "gain_at_end": self.gain_at_end, "r2": self.r2, "rmse": self.rmse, "converged": self.converged,
             "stop_reason": self.stop_reason, "options": asdict(self.options),
             **({} if self.upto is None else {"upto": self.upto, "prior_curves": self.prior_curves})}
        return {k: _json_float(v) for k, v in d.items()}


def _json_float(v):
    if isinstance(v, float | np.floating):
        return None if not math.isfinite(v) else round(float(v), 6)
    if isinstance(v, list):
        return [_json_float(e) for e in v]
    return v


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


def _lts_subset(x, y, p_start, x_end, g_min: float, opts: FitOptions, warm: np.ndarray) -> np.ndarray:
    """C-steps with the model constrained to g_end >= g_min, warm-started from the robust fit; returns the kept mask."""
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
        sol = solve(x[mask], y[mask], p_start, x_end, g_min, opts.upper, starts=[warm])
        return predict_theta(sol.theta, x, p_start, x_end) - y

    return lts_csteps(fit_subset, n, h, starts=starts).subset


def _holdout(x, y, p_start, opts: FitOptions) -> tuple[float | None, float | None, float | None]:
    """Tail RMSE of the constrained and the free fit refitted on the first (1 - holdout_frac) of compute."""
    cut = x.max() * (1.0 - opts.holdout_frac)
    train, test = x <= cut, x > cut
    if train.sum() < N_PARAMS + 2 or test.sum() < 2:
        return None, None, None
    x_end = float(x[train].max())
    out = []
    for g_min in (opts.saturation_gain, G_FREE):
        sol = solve(x[train], y[train], p_start, x_end, g_min, opts.upper)
        pred = predict_theta(sol.theta, x[test], p_start, x_end)
        out.append(float(np.sqrt(np.mean((pred - y[test]) ** 2))))
    return out[0], out[1], float(cut)


def _ceiling_ci(final: Solution, x, y, p_start, x_end, opts: FitOptions) -> tuple[float, float]:
    """Percentile interval for A from a residual bootstrap of the final (constrained) fit.

    Residuals are centred and inflated by sqrt(n / (n - 3)) and by the LTS variance factor (the
    kept residuals are the small ones); each resample is refitted from the final parameters. Those
    refits are least squares on the kept points, while A comes from trimming: at normal errors the
    LTS estimator's asymptotic variance is 1 / (alpha - 2 q phi(q)) against 1 / alpha for least
    squares on the kept share (Rousseeuw & Leroy 1987), so the draws' spread around A is widened by
    1 / sqrt(lts_variance_factor(alpha)) (x1.27 at alpha 0.9), and the interval is cut at the
    bound of A (`opts.upper`, 100%). Measured coverage: benchmarks/bench_fit_coverage.py.
    """
    n = len(x)
    if n <= N_PARAMS or opts.n_boot < 10:
        return (math.nan, math.nan)
    fitted = predict_theta(final.theta, x, p_start, x_end)
    resid = y - fitted
    resid = (resid - resid.mean()) * math.sqrt(n / (n - N_PARAMS) / lts_variance_factor(opts.lts_alpha))
    rng = np.random.default_rng(opts.seed)
    draws = np.array([solve(x, fitted + rng.choice(resid, size=n), p_start, x_end, opts.saturation_gain,
                             opts.upper, starts=[final.theta]).theta[0] for _ in range(opts.n_boot)])
    draws = final.theta[0] + (draws - final.theta[0]) / math.sqrt(lts_variance_factor(opts.lts_alpha))
    tail = (1.0 - opts.ci_level) / 2.0 * 100.0
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return (float(min(lo, opts.upper)), float(min(hi, opts.upper)))  # widening can pass the ceiling's bound


# ---------------------------------------------------------------------------------------------------
# The API


@dataclass(frozen=True)
class PointSelection:
    """The points of a curve after the branch point (x > 0) and which of them a fit uses.

    x, y, inlier_mask, fitted_mask: [N]. Inliers lie before the collapse and pass the Modified
    Z-score test; fitted points are the inliers LTS kept. `x_end` is the last compute before the
    collapse (of all points without one).
    """

    x: np.ndarray
    y: np.ndarray
    inlier_mask: np.ndarray
    fitted_mask: np.ndarray
    onset: int | None
    x_end: float

    @property
    def n_outliers(self) -> int:
        return (len(self.x) if self.onset is None else self.onset) - int(self.inlier_mask.sum())

    @property
    def n_trimmed(self) -> int:
        return int(self.inlier_mask.sum() - self.fitted_mask.sum())


def select_points(x: np.ndarray, y: np.ndarray, p_start: float, opts: FitOptions, g_min: float, *,
                  source: str, scope: str = "") -> PointSelection:
    """Steps 1-3 of the recipe on validated points: drop the branch point, cut a collapse, reject
    Modified Z-score outliers of a soft-L1 fit, then trim by LTS C-steps.

    Args:
        x: [M] compute since the branch point (EFLOPs), increasing, >= 0, finite.
        y: [M] performance (%), finite.
        p_start: performance at the branch point (%).
        opts: the recipe constants.
        g_min: least share of the gain realised at x_end in the fits that select points
            (opts.saturation_gain for finished curves, ~0 for unfinished ones).
        source: name used in error messages.
        scope: words after "points after the branch point" in the too-few-points error.
    """
    pos = x > 0
    x, y = x[pos], y[pos]
    if len(x) < N_PARAMS + 1:
        raise RetuInputError(f"{source}: {len(x)} points after the branch point{scope}; the fit needs at least {N_PARAMS + 1}")
    onset = detect_collapse(x, y, drop=opts.collapse_drop, min_points=opts.collapse_points,
                            crash_frac=opts.crash_frac)
    usable = np.arange(len(x)) < (onset if onset is not None else len(x))
    if usable.sum() < N_PARAMS + 1:
        raise RetuInputError(f"{source}: only {int(usable.sum())} points before the collapse; cannot fit")
    xu, yu = x[usable], y[usable]
    x_end = float(xu.max())
    robust = solve(xu, yu, p_start, x_end, g_min, opts.upper, loss="soft_l1", f_scale=noise_scale(yu))
    inl = mz_inliers(predict_theta(robust.theta, xu, p_start, x_end) - yu, opts.mz_threshold)
    keep = np.zeros(len(xu), dtype=bool)
    keep[np.flatnonzero(inl)[_lts_subset(xu[inl], yu[inl], p_start, x_end, g_min, opts, robust.theta)]] = True
    inlier_mask = np.zeros(len(x), dtype=bool)
    inlier_mask[np.flatnonzero(usable)[inl]] = True
    fitted_mask = np.zeros(len(x), dtype=bool)
    fitted_mask[np.flatnonzero(usable)[keep]] = True
    return PointSelection(x, y, inlier_mask, fitted_mask, onset, x_end)


def prepare_points(x, y, p_start: float | None, source: str) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Validated finite points (x: [M] EFLOPs, y: [M] %), P_start (default: y at x == 0) and the
    count of dropped non-finite rows."""
    x, y, n_dropped = increasing_series(x, y, source=source, x_name="compute", y_name="performance")
    if p_start is None:
        if x[0] != 0:
            raise RetuInputError(f"{source}: no point at compute 0 and no p_start given")
        p_start = float(y[0])
    return x, y, float(p_start), n_dropped


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
        A frozen CeilingFit; see the module docstring for the recipe. For a run still going, see
        `retu.scaling.early.predict_ceiling`.
    """
    opts = options or FitOptions()
    x, y, p_start, n_dropped = prepare_points(x, y, p_start, source)
    sel = select_points(x, y, p_start, opts, opts.saturation_gain, source=source)
    x_end, xf, yf = sel.x_end, sel.x[sel.fitted_mask], sel.y[sel.fitted_mask]
    final = solve(xf, yf, p_start, x_end, opts.saturation_gain, opts.upper, starts=None)
    free = solve(xf, yf, p_start, x_end, G_FREE, opts.upper)
    hold_c, hold_f, cut = _holdout(xf, yf, p_start, opts)
    unsaturated = hold_c is not None and hold_f < opts.unsaturated_ratio * hold_c and free.theta[0] > final.theta[0]
    ceiling, c_mid, slope = float(final.theta[0]), c_mid_of(final.theta, x_end), float(final.theta[2])
    resid = predict_theta(final.theta, xf, p_start, x_end) - yf
    return CeilingFit(
        source=source, p_start=p_start, ceiling=ceiling, c_mid=c_mid, slope=slope,
        ceiling_ci=_ceiling_ci(final, xf, yf, p_start, x_end, opts), ceiling_free=float(free.theta[0]),
        ceiling_bounds=(ceiling, max(ceiling, float(free.theta[0]))), saturated=not unsaturated,
        collapsed=sel.onset is not None, collapse_x=None if sel.onset is None else float(sel.x[sel.onset]),
        gain_at_end=gain_fraction(x_end, c_mid, slope), holdout_rmse=hold_c, holdout_rmse_free=hold_f,
        r2=r_squared(resid, yf), rmse=float(np.sqrt(np.mean(resid ** 2))), n_points=len(sel.x),
        n_dropped=n_dropped, n_outliers=sel.n_outliers, n_trimmed=sel.n_trimmed, converged=final.status > 0,
        stop_reason=final.message, x=sel.x, y=sel.y, inlier_mask=sel.inlier_mask, fitted_mask=sel.fitted_mask,
        holdout_x=cut, options=opts)
