"""SFT sub-phases from the validation loss, and where to switch to RL.

With L_min the minimum validation loss, reached first at step t_min, and the relative excess
e(t) = L(t) / L_min - 1, each checkpoint is labelled (paper eq. 13-17, delta_s = 0.02, delta_o = 0.10):

    Stable    e(t) <= delta_s                       (saturated: within 2% of the minimum)
    Adaptive  e(t) >  delta_s and t < t_min          (still learning)
    Mild      delta_s < e(t) <= delta_o, t > t_min   (mild overfitting)
    Severe    e(t) >  delta_o and t > t_min          (severe overfitting)

The recommended switch to RL is the first Stable checkpoint; the Mild window is reported too (the
paper finds switching in Stable or Mild maximises A_post). Online, during SFT, `online_phase` labels
the newest checkpoint against the minimum seen so far, and `is_saturated` says whether the loss has
stopped improving, which is when an SFT run may stop.

Reference: arXiv 2512.11470 section 5 (eq. 13-17, Fig. 3).
Differs from the paper: when the minimum is the last checkpoint and the previous one is still more
than delta_s above it, saturation is unconfirmed; the result says so (`saturation_confirmed`).
This module imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retu.errors import RetuInputError
from retu.series import increasing_series

PHASES = ("Adaptive", "Stable", "Mild", "Severe")
DELTA_STABLE = 0.02  # delta_s of the paper
DELTA_SEVERE = 0.10  # delta_o of the paper
# Checks without a DELTA_STABLE improvement that stop an SFT run; chosen on the seed-0 curves of the
# embedded task: at 3, two of its SFT runs (1000 and 2000 problems) stopped one check before their
# minimum, at 4 none did.
PATIENCE = 4
_TIE = 1e-9  # thresholds are inclusive; 0.51 / 0.50 - 1 is 0.020000000000000018 in floating point


def label_phases(steps: np.ndarray, losses: np.ndarray, *, delta_stable: float = DELTA_STABLE,
                 delta_severe: float = DELTA_SEVERE) -> list[str]:
    """Sub-phase of each checkpoint (see the module docstring).

    Args:
        steps: [N] increasing training steps.
        losses: [N] validation losses, finite and > 0.

    >>> label_phases(np.array([0, 1, 2, 3, 4]), np.array([1.0, 0.7, 0.5, 0.54, 0.6]))
    ['Adaptive', 'Adaptive', 'Stable', 'Mild', 'Severe']
    """
    losses = np.asarray(losses, dtype=float)
    i_min = int(np.argmin(losses))
    excess = losses / losses[i_min] - 1.0 - _TIE
    out = []
    for i, e in enumerate(excess):
        if e <= delta_stable:
            out.append("Stable")
        elif i < i_min:
            out.append("Adaptive")
        else:
            out.append("Mild" if e <= delta_severe else "Severe")
    return out


@dataclass(frozen=True)
class PhaseResult:
    """Result of `detect_phases`: per-checkpoint labels, the minimum and the recommended switch."""

    source: str
    steps: np.ndarray
    losses: np.ndarray
    phases: tuple[str, ...]
    L_min: float  # noqa: N815 - the paper's symbol
    step_min: int
    recommended_step: int
    mild_window: tuple[int, int] | None
    saturation_confirmed: bool
    delta_stable: float
    delta_severe: float
    n_dropped: int

    def phase_at(self, step: int) -> str | None:
        """Label of the checkpoint at `step`, or None if there is none."""
        idx = np.flatnonzero(self.steps == step)
        return self.phases[int(idx[0])] if len(idx) else None

    def summary(self) -> str:
        lines = [f"{self.source}: L_min = {self.L_min:.4g} at step {self.step_min}",
                 f"{'step':>8} {'val_loss':>9}  phase"]
        lines += [f"{int(s):>8} {v:9.4f}  {p}" for s, v, p in zip(self.steps, self.losses, self.phases, strict=True)]
        note = "" if self.saturation_confirmed else " (minimum at the last checkpoint: saturation not confirmed)"
        lines.append(f"switch to RL at step {self.recommended_step} (first Stable checkpoint){note}")
        if self.mild_window:
            lines.append(f"Mild overfitting window: steps {self.mild_window[0]}-{self.mild_window[1]}")
        if self.n_dropped:
            lines.append(f"{self.n_dropped} rows without a finite loss were dropped")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"source": self.source, "L_min": float(self.L_min), "step_min": self.step_min,
                "checkpoints": [{"step": int(s), "val_loss": float(v), "phase": p}
                                for s, v, p in zip(self.steps, self.losses, self.phases, strict=True)],
                "recommended_step": self.recommended_step,
                "mild_window": list(self.mild_window) if self.mild_window else None,
                "saturation_confirmed": self.saturation_confirmed, "delta_stable": self.delta_stable,
                "delta_severe": self.delta_severe, "n_dropped": self.n_dropped}


def _check(steps, losses, source: str) -> tuple[np.ndarray, np.ndarray, int]:
    steps, losses, dropped = increasing_series(steps, losses, source=source, x_name="step", y_name="validation loss")
    if (losses <= 0).any():
        raise RetuInputError(f"{source}: validation losses must be > 0")
    return steps.astype(np.int64), losses, dropped


def detect_phases(steps, losses, *, delta_stable: float = DELTA_STABLE, delta_severe: float = DELTA_SEVERE,
                  source: str = "losses") -> PhaseResult:
    """Label every checkpoint's sub-phase and recommend where to switch from SFT to RL.

    Args:
        steps: [N] checkpoint steps (increasing).
        losses: [N] validation losses; NaN rows are dropped and counted.
        delta_stable: relative band above L_min that counts as Stable (paper: 0.02).
        delta_severe: relative excess beyond which overfitting is Severe (paper: 0.10).
    """
    if not 0 < delta_stable < delta_severe:
        raise RetuInputError(f"need 0 < delta_stable < delta_severe, got {delta_stable} and {delta_severe}")
    steps, losses, dropped = _check(steps, losses, source)
    phases = label_phases(steps, losses, delta_stable=delta_stable, delta_severe=delta_severe)
    i_min = int(np.argmin(losses))
    first_stable = phases.index("Stable")
    mild = [int(s) for s, p in zip(steps, phases, strict=True) if p == "Mild"]
    confirmed = not (i_min == len(losses) - 1 and i_min > 0
                     and losses[i_min - 1] / losses[i_min] - 1.0 > delta_stable)
    return PhaseResult(source, steps, losses, tuple(phases), float(losses[i_min]), int(steps[i_min]),
                       int(steps[first_stable]), (mild[0], mild[-1]) if mild else None, confirmed,
                       delta_stable, delta_severe, dropped)


def online_phase(losses_so_far, *, delta_stable: float = DELTA_STABLE, delta_severe: float = DELTA_SEVERE) -> str:
    """Sub-phase of the newest checkpoint given only the losses seen so far (for use during SFT).

    A newest loss that improved on the previous minimum by more than delta_stable is Adaptive (the
    offline labels call a minimum Stable, but online it may keep falling).

    >>> online_phase([1.0, 0.6, 0.5]), online_phase([1.0, 0.5, 0.505]), online_phase([1.0, 0.5, 0.58])
    ('Adaptive', 'Stable', 'Severe')
    """
    losses = np.asarray(losses_so_far, dtype=float)
    losses = losses[np.isfinite(losses)]
    if len(losses) == 0:
        raise RetuInputError("online_phase needs at least one finite loss")
    if len(losses) == 1 or np.min(losses[:-1]) / losses[-1] - 1.0 > delta_stable:
        return "Adaptive"
    return label_phases(np.arange(len(losses)), losses, delta_stable=delta_stable, delta_severe=delta_severe)[-1]


def is_saturated(losses_so_far, *, delta_stable: float = DELTA_STABLE, patience: int = PATIENCE) -> bool:
    """True once the validation loss has stopped improving: SFT may stop here.

    Saturated when none of the last `patience` checkpoints improved the minimum before them by more
    than delta_stable (relative), as early stopping with patience does. One checkpoint past the
    minimum does not count by itself: at a constant learning rate the validation loss of the
    embedded default jumps 2-10% above its running minimum and then falls below it again (README,
    "Why no Stable phase"), so a rule that stopped at the first Mild or Severe checkpoint ended
    1000-problem SFT runs at step 400-450 whose minimum came at step 700-850.

    >>> is_saturated([1.0, 0.6, 0.5, 0.45]), is_saturated([1.0, 0.5, 0.499, 0.498, 0.497, 0.496])
    (False, True)
    >>> is_saturated([1.0, 0.5, 0.6, 0.45], patience=2), is_saturated([1.0, 0.5, 0.6, 0.7], patience=2)
    (False, True)
    """
    losses = np.asarray(losses_so_far, dtype=float)
    losses = losses[np.isfinite(losses)]
    if len(losses) <= patience:
        return False
    best_before = float(np.min(losses[:-patience]))
    return best_before / float(np.min(losses)) - 1.0 <= delta_stable and not math.isclose(best_before, 0.0)
