"""Prior for the ceiling fit of an unfinished curve, built from finished sibling curves (empirical Bayes).

Branches of one SFT run, and runs of one model and task, share their curve shape: the compute at
which half the gain is realised (C_mid, EFLOPs) and the steepness in log-compute (B). They also show
how much a curve still gains after a given compute. From the finished fits of n siblings:
- shape: each gives one draw of (ln C_mid, ln B);
- remaining gain after compute x: each gives (A - P_start)(1 - g(x)), g the share of its gain that
  its fitted curve has realised at x;
- noise: each gives its fit's RMSE, corrected for LTS trimming; `noise` is their median.
A new curve's shape and remaining gain are predicted by the Student-t predictive of a normal sample
(each coordinate on its own): location = the siblings' mean, scale = their sd * sqrt(1 + 1/n), n - 1
degrees of freedom. The heavy tails let a curve whose own data disagree with its siblings (the base
model's pure-RL curve among SFT branches) override the prior instead of being forced into it.

Siblings are finished fits (`retu.scaling.fit_ceiling`) that are not flagged (collapsed,
unsaturated) and have no parameter on a bound; a prior needs at least MIN_SIBLINGS of them.

Reference: Gelman et al., Bayesian Data Analysis (3rd ed.), sec. 3.2 (posterior predictive of a
normal sample with unknown mean and variance); Efron & Morris (1975) for empirical Bayes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from retu.scaling.curves import Curve
from retu.scaling.fit import CeilingFit
from retu.scaling.forms import gain_fraction
from retu.scaling.lsq import c_mid_of
from retu.scaling.robust import lts_variance_factor

MIN_SIBLINGS = 2
MIN_SCALE = 0.05  # ln units: siblings of one identical shape still leave 5% of spread


def t_residual(z: np.ndarray, dof: int) -> np.ndarray:
    """Residuals whose squares are -2 ln of a Student-t density at standardised distances z, up to a
    constant: sign(z) sqrt((dof + 1) ln(1 + z^2 / dof)); ~z near 0, growing like sqrt(ln z) far out.

    >>> t_residual(np.array([0.0, 2.0]), 4).round(4).tolist()  # sqrt(5 ln(1 + 4 / 4)) = sqrt(3.4657)
    [0.0, 1.8616]
    """
    z = np.asarray(z, dtype=float)
    return np.sign(z) * np.sqrt((dof + 1) * np.log1p(z * z / dof))


@dataclass(frozen=True)
class SiblingPrior:
    """Student-t prior on (ln C_mid, ln B), the siblings' fitted curves and noise sigma (accuracy points).

    gains, c_mids, slopes: [n] each sibling's A - P_start (%), C_mid (EFLOPs) and B.
    """

    log_c_mid: float
    log_slope: float
    scale_log_c_mid: float
    scale_log_slope: float
    noise: float
    gains: tuple[float, ...]
    c_mids: tuple[float, ...]
    slopes: tuple[float, ...]

    @property
    def n_curves(self) -> int:
        return len(self.gains)

    @property
    def dof(self) -> int:
        return self.n_curves - 1

    def remaining_gain(self, x: float) -> np.ndarray:
        """[n] gain each sibling's fitted curve still had to make after compute x (EFLOPs), in %.

        >>> p = SiblingPrior(0.0, 0.0, 1.0, 1.0, 0.4, gains=(10.0, 4.0), c_mids=(20.0, 5.0), slopes=(1.0, 1.0))
        >>> p.remaining_gain(20.0).round(6).tolist()  # half of 10 left at C_mid; 4 * (1 - 20 / 25) = 0.8
        [5.0, 0.8]
        """
        return np.array([gain * (1.0 - gain_fraction(x, c, b)) for gain, c, b in
                         zip(self.gains, self.c_mids, self.slopes, strict=True)])

    def remaining_interval(self, x: float, level: float) -> tuple[float, float]:
        """Prediction interval (%) at `level` of one more sibling's remaining gain after compute x."""
        mean, scale = self._remaining(x)
        half = float(stats.t.ppf((1.0 + level) / 2.0, self.dof)) * scale
        return mean - half, mean + half

    def _remaining(self, x: float) -> tuple[float, float]:
        """Location and scale (%) of the remaining-gain prior; the scale is at least the noise sigma."""
        remaining = self.remaining_gain(x)  # [n]
        return float(remaining.mean()), max(float(remaining.std(ddof=1)) * math.sqrt(1.0 + 1.0 / self.n_curves),
                                            self.noise)

    def penalty(self, p_start: float, x_end: float) -> Callable[[np.ndarray], np.ndarray]:
        """theta = (A, g_end, B) at x_end -> [3] t-residuals of its ln C_mid, ln B and remaining gain."""
        mean, scale = self._remaining(x_end)

        def residuals(theta: np.ndarray) -> np.ndarray:
            ceiling, g_end, slope = theta
            z = np.array([(math.log(c_mid_of(theta, x_end)) - self.log_c_mid) / self.scale_log_c_mid,
                          (math.log(slope) - self.log_slope) / self.scale_log_slope,
                          ((ceiling - p_start) * (1.0 - g_end) - mean) / scale])
            return t_residual(z, self.dof)

        return residuals


def usable_sibling(fit: CeilingFit) -> bool:
    """A finished fit that can inform a prior: not flagged and nothing on a bound."""
    return fit.upto is None and not fit.flagged and not fit.at_bounds


def build_sibling_prior(fits: Sequence[CeilingFit]) -> SiblingPrior | None:
    """The prior from the usable fits among `fits` (finished fits of sibling curves).

    Returns:
        None with fewer than MIN_SIBLINGS usable fits.

    >>> from retu.scaling import fit_ceiling, FitOptions
    >>> from retu.scaling.forms import sigmoid_power
    >>> x = np.linspace(5.0, 200.0, 40)
    >>> fits = [fit_ceiling(x, sigmoid_power(x, 60.0, 80.0, c, 1.5), p_start=60.0, options=FitOptions(n_boot=0))
    ...         for c in (10.0, 40.0)]
    >>> p = build_sibling_prior(fits)
    >>> round(math.exp(p.log_c_mid), 2), round(math.exp(p.log_slope), 2), p.dof  # C_mid: geometric mean
    (20.0, 1.5, 1)
    >>> build_sibling_prior(fits[:1]) is None
    True
    """
    use = [f for f in fits if usable_sibling(f)]
    if len(use) < MIN_SIBLINGS:
        return None
    draws = np.array([[math.log(f.c_mid), math.log(f.slope)] for f in use])  # [n, 2]
    scale = np.maximum(draws.std(axis=0, ddof=1) * math.sqrt(1.0 + 1.0 / len(use)), MIN_SCALE)  # [2]
    # The RMSE of a trimmed fit is over its smallest residuals: restore sigma (as in fit._ceiling_ci).
    noise = [f.rmse / math.sqrt(lts_variance_factor(f.options.lts_alpha)) if f.n_trimmed else f.rmse for f in use]
    return SiblingPrior(float(draws[:, 0].mean()), float(draws[:, 1].mean()), float(scale[0]), float(scale[1]),
                        float(np.median(noise)), gains=tuple(f.ceiling - f.p_start for f in use),
                        c_mids=tuple(f.c_mid for f in use), slopes=tuple(f.slope for f in use))


def sibling_prior_for(curve: Curve, siblings: Sequence[tuple[Curve, CeilingFit]]) -> SiblingPrior | None:
    """The prior of one curve from finished sibling fits: those of its own scene when at least
    MIN_SIBLINGS of them are usable, else all usable ones; never the curve itself (same file)."""
    own = Path(curve.source).resolve()
    others = [(c, f) for c, f in siblings if Path(c.source).resolve() != own and usable_sibling(f)]
    same = [f for c, f in others if c.scene == curve.scene]
    return build_sibling_prior(same if len(same) >= MIN_SIBLINGS else [f for _, f in others])
