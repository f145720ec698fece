"""95% intervals for accuracies measured on a finite set of problems (numpy-free, stdlib only)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(percent: float, n: int) -> tuple[float, float]:
    """Wilson score 95% interval (in %) of an accuracy of `percent` measured on `n` problems.

    With several samples per problem (avg@k) it is conservative: the per-problem mean scores vary
    less than single 0/1 answers.

    >>> tuple(round(v, 2) for v in wilson_interval(50.0, 100))
    (40.38, 59.62)
    >>> wilson_interval(0.0, 20)[0], round(wilson_interval(0.0, 20)[1], 2)
    (0.0, 16.11)
    """
    p = percent / 100.0
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return (max(100.0 * (centre - half), 0.0), min(100.0 * (centre + half), 100.0))


def eval_interval(metrics: dict) -> tuple[float, float] | None:
    """The 95% interval of an eval record's `eval/overall`: Wilson over its `eval/n` problems, else
    normal from its standard error `eval/se`; None when the record has neither."""
    value, n, se = metrics.get("eval/overall"), metrics.get("eval/n"), metrics.get("eval/se")
    if value is None:
        return None
    if n:
        return wilson_interval(float(value), int(n))
    if se is not None and math.isfinite(se):
        return (max(value - Z95 * se, 0.0), min(value + Z95 * se, 100.0))
    return None
