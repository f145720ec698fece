"""Numbers with 95% intervals (`Estimate`), how each kind gets its interval, and combining seeds.

An accuracy of a single checkpoint gets a Wilson interval over the evaluated problems
(`binomial_estimate`), a fitted ceiling the fit's bootstrap interval (`fit_estimate`; an unsaturated
fit's interval reaches up to its free fit), a correlation a Fisher z interval (`correlation_estimate`).

With several seeds, the same quantity measured on each seed is combined (`combine`): the mean over
seeds, with a t interval over the seeds (k - 1 degrees of freedom), never narrower than the mean
within-seed error, and cut at the ends of the quantity's scale (0-100% for an accuracy).

The claims that compare these numbers are in `retu.report.findings`. This module imports numpy and
scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from retu.intervals import Z95, wilson_interval

CORRELATION = (-1.0, 1.0)  # the scale of a correlation's Estimate (an accuracy's is the default, 0-100%)


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval.

    Attributes:
        value: The estimate (accuracy in %, or a correlation).
        lo, hi: The interval (NaN when it is unknown).
        n: Evaluated problems behind a binomial estimate, or points behind a correlation.
        seeds: Seeds combined into it.
        how: How the interval was made ("binomial", "fit", "fit, unsaturated", "fisher z", "k seeds").
        scale: The values the quantity can take: (0, 100) for an accuracy in %, (-1, 1) for a
            correlation.
    """

    value: float
    lo: float
    hi: float
    n: int | None = None
    seeds: int = 1
    how: str = ""
    scale: tuple[float, float] = (0.0, 100.0)

    @property
    def known(self) -> bool:
        """The interval is known (its upper end may be +inf: "at least lo")."""
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    def text(self, digits: int = 1) -> str:
        """`72.4 [69.1, 75.6] (n=400)`; the interval is '?' when unknown."""
        ci = f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}]" if self.known else "[?]"
        extra = [f"n={self.n}"] if self.n is not None else []
        extra += [f"{self.seeds} seeds"] if self.seeds > 1 else []
        extra += [self.how] if any(w in self.how for w in ("unsaturated", "collapsed", "at least")) else []
        return f"{self.value:.{digits}f} {ci}" + (f" ({', '.join(extra)})" if extra else "")

    def to_dict(self) -> dict:
        def num(v):
            return round(float(v), 4) if math.isfinite(v) else None

        return {"value": num(self.value), "lo": num(self.lo), "hi": num(self.hi), "n": self.n,
                "seeds": self.seeds, "how": self.how}


def binomial_estimate(percent: float, n: int | None) -> Estimate:
    """Accuracy (%) of `n` problems with its Wilson 95% interval (unknown interval without n).

    >>> binomial_estimate(50.0, 100).text()
    '50.0 [40.4, 59.6] (n=100)'
    """
    if not n:
        return Estimate(percent, math.nan, math.nan, None, how="binomial")
    return Estimate(percent, *wilson_interval(percent, n), n, how="binomial")


def fit_estimate(fit) -> Estimate:
    """A fitted ceiling (`retu.scaling.CeilingFit`) as an Estimate.

    A saturated fit gives A with its bootstrap interval. An unsaturated fit's A is only a lower
    bound: its interval runs from the bootstrap's lower end up to the free fit's ceiling. Both ends
    stay on the accuracy scale, 0-100%.

    >>> from types import SimpleNamespace as Fit
    >>> fit_estimate(Fit(ceiling=9.1, ceiling_ci=(-0.9, 11.1), collapsed=False, saturated=True)).text()
    '9.1 [0.0, 11.1]'
    """
    lo, hi = fit.ceiling_ci
    how = "fit" + (", collapsed" if fit.collapsed else "")
    if not fit.saturated:
        hi, how = max(hi, fit.ceiling_bounds[1]), how + ", unsaturated"
    # The bootstrap refits can leave the accuracy scale (a flat curve near 0%); its ends cut there.
    low, high = Estimate.scale
    return Estimate(fit.ceiling, lo if math.isnan(lo) else max(low, lo), hi if math.isnan(hi) else min(high, hi),
                    how=how)


def correlation_estimate(x: Sequence[float], y: Sequence[float]) -> Estimate:
    """Pearson r of paired values with its Fisher z 95% interval (unknown for fewer than 4 pairs).

    >>> correlation_estimate([1, 2, 3, 4, 5], [2.0, 1.9, 1.2, 1.0, 0.4]).text(2)
    '-0.98 [-1.00, -0.69] (n=5)'
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    r = float(stats.pearsonr(x, y).statistic)
    n = len(x)
    if n < 4 or abs(r) >= 1.0:
        return Estimate(r, math.nan, math.nan, n, how="fisher z", scale=CORRELATION)
    z, half = math.atanh(r), Z95 / math.sqrt(n - 3)
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), n, how="fisher z", scale=CORRELATION)


def combine(estimates: Sequence[Estimate]) -> Estimate:
    """One estimate from the same quantity measured on several seeds.

    The mean over the k seeds, with half-width max(t_{k-1} x sd / sqrt(k), 1.96 x sqrt(sum se_i^2) / k),
    se_i the within-seed standard error (half-width / 1.96): the spread across seeds, but never
    less than the measurement error of the mean; cut at the ends of their common `scale`. One estimate
    is returned as it is.

    >>> e = combine([Estimate(60.0, 55.0, 65.0), Estimate(64.0, 59.0, 69.0), Estimate(62.0, 57.0, 67.0)])
    >>> round(e.value, 1), round(e.lo, 2), round(e.hi, 2), e.seeds
    (62.0, 57.03, 66.97, 3)
    >>> combine([Estimate(99.0, 97.0, 100.0), Estimate(95.0, 93.0, 97.0)]).hi
    100.0
    >>> combine([Estimate(70.0, 60.0, 80.0, how="fit"), Estimate(75.0, 65.0, 100.0, how="fit, unsaturated")]).how
    'fit, unsaturated'

    Raises:
        ValueError: The estimates are on different scales.
    """
    if len({e.scale for e in estimates}) > 1:
        raise ValueError(f"cannot combine estimates on different scales: {sorted({e.scale for e in estimates})}")
    if len(estimates) == 1:
        return estimates[0]
    k = len(estimates)
    values = np.array([e.value for e in estimates])
    mean = float(values.mean())
    spread = float(stats.t.ppf(0.975, k - 1) * values.std(ddof=1) / math.sqrt(k))
    if all(e.known and math.isfinite(e.hi) for e in estimates):
        se = np.array([(e.hi - e.lo) / (2 * Z95) for e in estimates])
        half = max(spread, Z95 * math.sqrt(float(np.sum(se ** 2))) / k)
    else:
        half = spread
    n = sum(e.n for e in estimates) if all(e.n is not None for e in estimates) else None
    how = ", ".join(dict.fromkeys(part for h in sorted({e.how for e in estimates}) for part in h.split(", ") if part))
    open_above = any(e.hi == math.inf for e in estimates)  # one seed's "at least" stays open above
    low, high = estimates[0].scale
    return Estimate(mean, max(low, mean - half), math.inf if open_above else min(high, mean + half), n, k, how,
                    estimates[0].scale)
