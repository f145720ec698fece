"""Paradigm curves on one compute axis (the paper's Fig. 2): each run's accuracy against cumulative
training FLOPs from the base model, its fitted ceiling, and the mean over seeds with error bars.

A paradigm's run is an SFT run (pure SFT, from the base model) or an RL run; an RL run from an SFT
checkpoint (SFT-then-RL) starts at the FLOPs its SFT leg spent. Each curve's ceiling is fitted from
the paradigm's own start. This module reads metrics.jsonl only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retu.errors import RetuInputError
from retu.intervals import eval_interval
from retu.report.estimates import Estimate, combine, fit_estimate
from retu.scaling import fit_ceiling
from retu.scaling.curves import read_curve_run
from retu.scaling.decompose import fit_flags

@dataclass(frozen=True)
class Paradigm:
    """One paradigm's curve on the shared axis and its fit.

    Attributes:
        method: Short name (sft, dapo_dc, luffy, ..., sft_then_rl).
        label: Display name.
        x: [N] cumulative EFLOPs from the base model, first point the paradigm's start.
        y: [N] accuracy (%) at each point.
        x0: EFLOPs spent before the paradigm's own run (SFT-then-RL: its SFT leg; else 0).
        steps: [N] the run's step of each point.
        fit: The ceiling fit on (x - x0, y), or None.
        note: Why there is no fit, or the fit's flags.
        y_ci: [2, N] 95% interval (lo, hi) of each point: its evaluation's Wilson interval, or the
            interval across seeds; NaN where unknown.
        seeds: Seeds averaged into the curve.
        ceiling: The fitted ceiling as an Estimate (combined over seeds), or None.
    """

    method: str
    label: str
    x: np.ndarray
    y: np.ndarray
    x0: float
    steps: np.ndarray
    fit: object
    note: str
    y_ci: np.ndarray | None = None
    seeds: int = 1
    ceiling: Estimate | None = None

    def row(self) -> dict:
        """The table row (JSON-safe)."""
        f = self.fit
        return {"method": self.method, "paradigm": self.label, "seeds": self.seeds, "steps": int(self.steps[-1]),
                "eflops": float(self.x[-1]), "start": float(self.y[0]), "best": float(self.y.max()),
                "final": float(self.y[-1]), "ceiling": None if self.ceiling is None else self.ceiling.to_dict(),
                "trusted": f is not None and not f.flagged, "note": self.note}


def fit_paradigm(x: np.ndarray, y: np.ndarray, source: str):
    """(fit or None, note): the ceiling fit from the paradigm's start, or why it could not be made."""
    try:
        fit = fit_ceiling(x, y, p_start=float(y[0]), source=source)
    except RetuInputError as exc:
        return None, f"not fitted: {exc}"
    return fit, ", ".join(fit_flags(fit))


def _point_intervals(path: Path, n_points: int) -> np.ndarray:
    """[2, n_points] 95% intervals (lo, hi) of a run's last n_points evaluations (`eval_interval`), in
    eval-record order; NaN where unknown."""
    from retu.metrics import read_records

    cis = [eval_interval(r["metrics"]) for r in read_records(path)
           if r.get("kind") == "eval" and (r.get("metrics") or {}).get("eval/overall") is not None]
    ci = np.array([(np.nan, np.nan) if c is None else c for c in cis], dtype=float).reshape(-1, 2).T
    return ci[:, -n_points:] if ci.shape[1] >= n_points else np.full((2, n_points), np.nan)


def paradigm_curve(method: str, label: str, run_dir: Path) -> Paradigm:
    """The paradigm's points from its metrics.jsonl, on the shared axis, and its ceiling fit."""
    path = Path(run_dir) / "metrics.jsonl"
    curve = read_curve_run(path)
    if curve.kind == "sft":
        x, y, steps, x0 = curve.x, curve.y, curve.steps, 0.0
    else:  # RL: the branch point, then the points since it
        x0 = float(curve.sft_eflops or 0.0)
        x = x0 + np.concatenate([[0.0], curve.x])
        y, steps = np.concatenate([[curve.p_start], curve.y]), np.concatenate([[curve.sft_step or 0], curve.steps])
    fit, note = fit_paradigm(x - x0, y, str(run_dir))
    return Paradigm(method, label, x, y, x0, steps, fit, note, _point_intervals(path, len(y)),
                    ceiling=None if fit is None else fit_estimate(fit))


def mean_over_seeds(curves: list[Paradigm]) -> Paradigm:
    """One paradigm averaged over seeds: points matched by index (the runs share their schedule),
    x and y the means, intervals the 95% interval across seeds (`estimates.combine`), the ceiling the
    combined ceilings, the fit refitted on the mean curve. One curve is returned as it is."""
    if len(curves) == 1:
        return curves[0]
    n = min(len(c.y) for c in curves)
    x = np.mean([c.x[:n] for c in curves], axis=0)
    points = [combine([Estimate(c.y[i], c.y_ci[0, i], c.y_ci[1, i]) for c in curves]) for i in range(n)]
    y = np.array([p.value for p in points])
    x0 = float(np.mean([c.x0 for c in curves]))
    fit, note = fit_paradigm(x - x0, y, curves[0].method)
    ceilings = [c.ceiling for c in curves if c.ceiling is not None]
    first = curves[0]
    return Paradigm(first.method, first.label, x, y, x0, first.steps[:n], fit, note,
                    np.array([[p.lo for p in points], [p.hi for p in points]]), len(curves),
                    combine(ceilings) if len(ceilings) == len(curves) else None)
