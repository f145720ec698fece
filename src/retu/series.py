"""One check for the paired series every analysis reads: x increasing, y its value at x.

The SFT sub-phases read (step, validation loss) and the scaling fits read (compute, performance);
both pass their arrays through `increasing_series`, so they refuse the same bad input with the same
one-line errors.
"""

from __future__ import annotations

import numpy as np

from retu.errors import RetuInputError


def increasing_series(x, y, *, source: str, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The finite points of a series whose x is >= 0 and strictly increasing.

    Args:
        x, y: [N] numbers; a point with a non-finite x or y is dropped and counted.
        source: the file or run the series came from, named first in every error.
        x_name, y_name: what x and y are, as the errors name them.

    Returns:
        x, y: [M] float arrays of the finite points (M >= 1), and N - M.

    Raises:
        RetuInputError: shapes differ or are not 1-D, no finite point, a negative x or an x that
            does not increase (naming the point's index among the finite points).

    >>> increasing_series([0, 1, 2], [1.0, float("nan"), 3.0], source="s", x_name="step", y_name="loss")
    (array([0., 2.]), array([1., 3.]), 1)
    >>> increasing_series([2, 1], [1, 1], source="s", x_name="step", y_name="loss")
    Traceback (most recent call last):
    retu.errors.RetuInputError: s: step is not increasing at point 1 (2 then 1)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise RetuInputError(f"{source}: {x_name} and {y_name} must be 1-D of equal length, got {x.shape} and {y.shape}")
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        raise RetuInputError(f"{source}: no finite ({x_name}, {y_name}) points")
    x, y = x[finite], y[finite]
    if (x < 0).any():
        i = int(np.flatnonzero(x < 0)[0])
        raise RetuInputError(f"{source}: negative {x_name} at point {i} ({x[i]:g})")
    if (np.diff(x) <= 0).any():
        i = int(np.flatnonzero(np.diff(x) <= 0)[0]) + 1
        raise RetuInputError(f"{source}: {x_name} is not increasing at point {i} ({x[i - 1]:g} then {x[i]:g})")
    return x, y, int((~finite).sum())
