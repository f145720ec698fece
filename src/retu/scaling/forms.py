"""Scaling-curve forms: small pure functions looked up by name in FORMS.

All forms map compute x >= 0 (EFLOPs since the branch point) to performance (accuracy in %).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def sigmoid_power(x: np.ndarray, p_start: float, ceiling: float, c_mid: float, slope: float) -> np.ndarray:
    """Sigmoidal power law (paper eq. 11): P(x) = P_start + (A - P_start) / (1 + (x / C_mid)^-B).

    Computed as P_start + (A - P_start) * expit(B * (ln x - ln C_mid)), which is exact, stable for
    any x and gives P(0) = P_start.

    Args:
        x: [N] compute since the branch point (EFLOPs), >= 0.
        p_start: performance at x = 0 (the branch point), %.
        ceiling: A, the asymptote as x -> infinity, %.
        c_mid: C_mid, compute at which half of the gain A - P_start is reached (EFLOPs), > 0.
        slope: B, steepness in log-compute, > 0.

    Returns:
        [N] predicted performance.

    Reference: arXiv 2512.11470 eq. 11 (the ScaleRL form, arXiv 2510.13786).

    >>> sigmoid_power(np.array([0.0, 10.0, 1e9]), 50.0, 80.0, 10.0, 1.5).round(6).tolist()
    [50.0, 65.0, 80.0]
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        log_x = np.log(x)  # log(0) = -inf -> expit(-inf) = 0 -> P_start
    return p_start + (ceiling - p_start) * expit(slope * (log_x - np.log(c_mid)))


def gain_fraction(x: float, c_mid: float, slope: float) -> float:
    """Share of the gain A - P_start that sigmoid_power has realised at compute x (0..1).

    >>> gain_fraction(10.0, 10.0, 2.0)
    0.5
    """
    return float(expit(slope * (np.log(x) - np.log(c_mid)))) if x > 0 else 0.0


FORMS = {"sigmoid_power": sigmoid_power}
