"""The ceiling of an RL run while it trains, and which branches of a pipeline are hopeless.

Both are pure functions for the training loop and `retu pipeline`: `estimate_live_ceiling` runs
exactly the recipe of `retu fit --upto` (`retu.scaling.early.predict_ceiling` with upto = 1 on the
points seen so far), and `find_hopeless` compares the branches' intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


from retu.errors import RetuInputError
from retu.scaling.early import predict_ceiling
from retu.scaling.fit import FitOptions, detect_collapse, prepare_points
from retu.scaling.lsq import N_PARAMS
from retu.scaling.prior import SiblingPrior

MIN_LIVE_POINTS = 5  # evaluations after the branch point before a live estimate is made


@dataclass(frozen=True)
class LiveCeiling:
    """A running curve's ceiling (%): A, or None when the data cannot pin it (then lo is a lower
    bound), with the interval [lo, hi] at options.ci_level (95%); n_points evaluations were used.
    open_below: lo is only the search range's floor, not a bound the data set (`CeilingFit.open_below`)."""

    A: float | None  # noqa: N815 - the paper's symbol
    lo: float
    hi: float
    n_points: int
    open_below: bool = False

    @property
    def interval(self) -> tuple[float, float]:
        return (self.lo, self.hi)

    def to_metrics(self) -> dict[str, float | None]:
        """The eval record's fields: ceiling/A (None: not pinned), ceiling/lo (None: no lower bound
        from the data) and ceiling/hi."""
        return {"ceiling/A": self.A, "ceiling/lo": None if self.open_below else self.lo, "ceiling/hi": self.hi}

    def text(self) -> str:
        """One line for a progress bar: "ceiling 84.2 [82.0, 86.9]", "ceiling >= 80.1" or "ceiling not pinned yet"."""
        if self.A is not None:
            return f"ceiling {self.A:.1f} [{self.lo:.1f}, {self.hi:.1f}]"
        return "ceiling not pinned yet" if self.open_below else f"ceiling >= {self.lo:.1f}"


def estimate_live_ceiling(x, y, *, p_start: float | None = None, prior: SiblingPrior | None = None,
                          min_points: int = MIN_LIVE_POINTS, options: FitOptions | None = None) -> LiveCeiling | None:
    """The ceiling estimate (or lower bound) of a run from its evaluations so far.

    Args:
        x: [N] compute since the branch point (EFLOPs) of the evaluations so far, increasing, >= 0.
        y: [N] their performance (accuracy in %); NaN rows are dropped.
        p_start: performance at the branch point; default: y at x == 0.
        prior: from finished sibling runs (`retu.scaling.prior.build_sibling_prior`), or None.
        min_points: least number of evaluations after the branch point (and before a collapse) for an
            estimate, >= 4.
        options: the recipe constants (FitOptions()).

    Returns:
        A LiveCeiling, or None while fewer than min_points evaluations are usable.

    Raises:
        RetuInputError: compute negative or not increasing, no finite point, no p_start and no
            point at compute 0, or min_points below 4.

    >>> import numpy as np
    >>> from retu.scaling.forms import sigmoid_power
    >>> x = np.arange(0.0, 9.0)
    >>> estimate_live_ceiling(x[:4], sigmoid_power(x[:4], 60.0, 80.0, 3.0, 1.5)) is None  # 3 points after 0
    True
    >>> live = estimate_live_ceiling(x, sigmoid_power(x, 60.0, 80.0, 3.0, 1.5))
    >>> live.n_points, live.lo <= 80.0 <= live.hi
    (8, True)
    """
    opts = options or FitOptions()
    if min_points < N_PARAMS + 1:
        raise RetuInputError(f"min_points must be at least {N_PARAMS + 1}, got {min_points}")
    xs, ys, p_start, _ = prepare_points(x, y, p_start, "live curve")
    xs, ys = xs[xs > 0], ys[xs > 0]
    onset = detect_collapse(xs, ys, drop=opts.collapse_drop, min_points=opts.collapse_points,
                            crash_frac=opts.crash_frac)
    if (len(xs) if onset is None else onset) < min_points:
        return None
    fit = predict_ceiling(xs, ys, upto=1.0, p_start=p_start, prior=prior, source="live curve", options=opts)
    lo, hi = fit.ceiling_bounds
    return LiveCeiling(fit.A, lo, hi, fit.n_points, fit.open_below)


def find_hopeless(intervals: Mapping[str, tuple[float, float] | None]) -> tuple[str, ...]:
    """Branches whose ceiling interval lies wholly below the best branch's lower bound.

    The best branch is the one with the highest lower bound; a branch is hopeless when the upper end
    of its interval is below that bound. Branches without an estimate yet (None) are never hopeless
    and set no bound. Each interval is a 95% one, so with k branches a good branch is wrongly called
    hopeless with probability up to about (k - 1) x 2.5%.

    Args:
        intervals: branch name -> (lo, hi) of its ceiling in % (`LiveCeiling.interval`), or None.

    Returns:
        The hopeless branches' names, in the order of `intervals`.

    >>> find_hopeless({"a": (80.0, 84.0), "b": (70.0, 79.5), "c": (75.0, 100.0), "d": None})
    ('b',)
    """
    known = {name: iv for name, iv in intervals.items() if iv is not None}
    if not known:
        return ()
    best_lo = max(lo for lo, _ in known.values())
    return tuple(name for name, (_, hi) in known.items() if hi < best_lo)
