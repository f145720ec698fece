"""Plasticity-Ceiling decomposition A_post = P_sft + PL_rl per SFT checkpoint, and the predictor check.

For each scene (one SFT dataset), every RL curve branched from an SFT checkpoint gives one row:
P_sft = performance at the branch point, A_post = the fitted RL ceiling, PL_rl = A_post - P_sft
(paper eq. 3-5, Table 4). `correlate` relates each dataset's minimum SFT validation loss to its best
A_post (paper Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from retu.errors import RetuInputError
from retu.scaling.curves import Curve
from retu.scaling.fit import CeilingFit


@dataclass(frozen=True)
class DecompositionRow:
    """One SFT checkpoint: where RL branched and what it reached. None where the ceiling is untrusted."""

    step: int | None
    x_sft: float | None
    P_sft: float  # noqa: N815 - the paper's symbols
    PL_rl: float | None  # noqa: N815
    A_post: float | None  # noqa: N815
    A_bounds: tuple[float, float]  # noqa: N815
    C_mid: float  # noqa: N815
    B: float
    flags: tuple[str, ...]
    P_sft_ci: tuple[float, float] | None = None  # noqa: N815 - 95%, from the branch point's evaluation
    A_ci: tuple[float, float] | None = None  # noqa: N815 - 95% bootstrap interval of the fitted ceiling

    def to_dict(self) -> dict:
        def ci(pair):
            return None if pair is None or not all(math.isfinite(v) for v in pair) else [round(v, 4) for v in pair]

        return {"step": self.step, "x_sft": self.x_sft, "P_sft": round(self.P_sft, 4), "P_sft_ci": ci(self.P_sft_ci),
                "A_ci": ci(self.A_ci),
                "PL_rl": None if self.PL_rl is None else round(self.PL_rl, 4),
                "A_post": None if self.A_post is None else round(self.A_post, 4),
                "A_bounds": [round(v, 4) for v in self.A_bounds], "C_mid": round(self.C_mid, 4),
                "B": round(self.B, 4), "flags": list(self.flags)}


@dataclass(frozen=True)
class DecompositionTable:
    """Rows of one scene sorted by SFT step; `best` is the row with the highest trusted A_post."""

    scene: str
    rows: tuple[DecompositionRow, ...]

    @property
    def best(self) -> DecompositionRow | None:
        trusted = [r for r in self.rows if r.A_post is not None and not r.flags]
        return max(trusted, key=lambda r: r.A_post) if trusted else None

    def to_dict(self) -> dict:
        best = self.best
        return {"scene": self.scene, "rows": [r.to_dict() for r in self.rows],
                "best_step": None if best is None else best.step,
                "best_A_post": None if best is None else round(best.A_post, 4)}

    def summary(self) -> str:
        lines = [f"scene {self.scene}: A_post = P_sft + PL_rl",
                 f"{'step':>7} {'x_sft':>9} {'P_sft':>6} {'PL_rl':>6} {'A_post':>7} {'C_mid':>8} {'B':>5}  flags"]
        for r in self.rows:
            pl = "-" if r.PL_rl is None else f"{r.PL_rl:.1f}"
            a = f">={r.A_bounds[0]:.1f}" if r.A_post is None else f"{r.A_post:.1f}"
            x = "-" if r.x_sft is None else f"{r.x_sft:.1f}"
            lines.append(f"{r.step if r.step is not None else '-':>7} {x:>9} {r.P_sft:6.1f} {pl:>6} {a:>7} "
                         f"{r.C_mid:8.3g} {r.B:5.2f}  {','.join(r.flags)}")
        return "\n".join(lines)


# What each flag of `fit_flags` tells a reader; a flag starts with its key ("at bound (B=10)").
FLAG_MEANINGS = {
    "collapsed": "the run crashed, and only its points before the first drop were fitted",
    "unsaturated": "still rising at its last point, so the ceiling is only known to lie in an interval",
    "at bound": "the fit left a parameter on a bound of its search box, because the points do not pin the "
                "curve's shape (for example a flat curve, or all of its gain between two evaluations); C_mid and B "
                "are not estimates",
}


def fit_flags(fit: CeilingFit) -> tuple[str, ...]:
    """Words for what makes a ceiling untrustworthy (empty when it can be used as a number)."""
    bounds = ("at bound (" + ", ".join(fit.at_bounds) + ")",) if fit.at_bounds else ()
    return tuple(f for f, on in (("collapsed", fit.collapsed), ("unsaturated", not fit.saturated)) if on) + bounds


def flag_legend(flags: Iterable[str]) -> str:
    """One line saying what the flags among `flags` mean, or "" when there are none.

    Example:
        >>> flag_legend(["", "at bound (B=10)"]).startswith("Flags: at bound = the fit left a parameter")
        True
    """
    flags = list(flags)
    used = [key for key in FLAG_MEANINGS if any(f.startswith(key) for f in flags)]
    return ("Flags: " + "; ".join(f"{key} = {FLAG_MEANINGS[key]}" for key in used) + ".") if used else ""


def decompose(pairs: list[tuple[Curve, CeilingFit]]) -> list[DecompositionTable]:
    """Group fitted RL curves by scene into decomposition tables (rows sorted by SFT step)."""
    by_scene: dict[str, list[DecompositionRow]] = {}
    for curve, fit in pairs:
        if curve.kind != "rl":
            continue
        flags = fit_flags(fit)
        a_post = None if flags and not fit.saturated else fit.ceiling
        by_scene.setdefault(curve.scene, []).append(DecompositionRow(
            step=curve.sft_step, x_sft=curve.sft_eflops if curve.sft_step else 0.0 if curve.sft_step == 0 else None,
            P_sft=fit.p_start, PL_rl=None if a_post is None else a_post - fit.p_start, A_post=a_post,
            A_bounds=fit.ceiling_bounds, C_mid=fit.c_mid, B=fit.slope, flags=flags, P_sft_ci=curve.p_start_ci,
            A_ci=fit.ceiling_ci))
    return [DecompositionTable(scene, tuple(sorted(rows, key=lambda r: (r.step is None, r.step or 0))))
            for scene, rows in sorted(by_scene.items())]


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of paired values (with two-sided p-values)."""

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float

    def summary(self) -> str:
        return (f"n = {self.n}: Pearson r = {self.pearson_r:.3f} (p = {self.pearson_p:.3g}), "
                f"Spearman rho = {self.spearman_rho:.3f} (p = {self.spearman_p:.3g})")

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def correlate(min_val_loss, best_ceiling) -> Correlation:
    """Correlate each dataset's minimum SFT validation loss with its best A_post (paper Table 1).

    Args:
        min_val_loss: [K] minimum validation loss per dataset.
        best_ceiling: [K] best A_post per dataset (same order).

    >>> c = correlate([0.70, 0.59, 0.54, 0.50, 0.40], [24.9, 53.7, 55.1, 56.3, 70.1])
    >>> round(c.pearson_r, 3), round(c.spearman_rho, 3)
    (-0.95, -1.0)
    """
    a = np.asarray(min_val_loss, dtype=float)
    b = np.asarray(best_ceiling, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise RetuInputError(f"correlation needs two equal-length lists, got {a.shape} and {b.shape}")
    if len(a) < 3:
        raise RetuInputError(f"correlation needs at least 3 datasets, got {len(a)}")
    pr = stats.pearsonr(a, b)
    sr = stats.spearmanr(a, b)
    return Correlation(len(a), float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue))
