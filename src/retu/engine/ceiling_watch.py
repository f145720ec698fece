"""The ceiling of an RL run while it trains, and the pruning test of `retu pipeline` (`prune: true`).

After each evaluation the run's points so far (compute since the branch point, overall accuracy) are
fitted by `retu.scaling.live.estimate_live_ceiling`, the recipe of `retu fit --upto`, and the eval
record carries `ceiling/A` (null while the data cannot pin it), `ceiling/lo` (null while the data set
no lower bound) and `ceiling/hi`. A prior from finished sibling runs (`sibling_prior`: the branches of
the same SFT run that finished before this one) lends the fit their curve shape, as `retu fit --upto
--prior` does. With rivals (the final intervals of those siblings), the run is hopeless once its
interval lies wholly below the best rival's lower bound (`retu.scaling.live.find_hopeless`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retu.errors import RetuInputError
from retu.flops import EFLOP
from retu.metrics import read_records
from retu.scaling.curves import read_curve_run
from retu.scaling.fit import FitOptions, fit_ceiling
from retu.scaling.live import LiveCeiling, estimate_live_ceiling, find_hopeless
from retu.scaling.prior import SiblingPrior, build_sibling_prior

CEILING_KEYS = ("ceiling/A", "ceiling/lo", "ceiling/hi")
_SELF = "\0this run"  # the watched run's key among its rivals (no run directory has this name)


@dataclass
class CeilingWatch:
    """The live ceiling of one run.

    Attributes:
        rivals: branch name -> (lo, hi) of each finished sibling's ceiling; empty: never hopeless.
        prior: the finished siblings' curve shape (`sibling_prior`), or None.
        points: (cumulative FLOPs, overall accuracy %) of each evaluation, step 0 first.
        live: the latest estimate, None while too few evaluations are usable.
    """

    rivals: dict[str, tuple[float, float]] = field(default_factory=dict)
    prior: SiblingPrior | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    live: LiveCeiling | None = None

    def add(self, flops: float, overall: float | None) -> dict[str, float | None]:
        """Record one evaluation; return its ceiling/* metrics ({} while there is no estimate)."""
        if overall is not None and math.isfinite(overall):
            self.points.append((flops, overall))
        if len(self.points) < 2:
            return {}
        x = (np.array([p[0] for p in self.points]) - self.points[0][0]) / EFLOP  # [N] EFLOPs since step 0
        y = np.array([p[1] for p in self.points])  # [N] accuracy %
        self.live = estimate_live_ceiling(x, y, p_start=float(y[0]), prior=self.prior)
        return {} if self.live is None else self.live.to_metrics()

    def hopeless(self) -> bool:
        """True when this run's interval lies wholly below the best rival's lower bound."""
        if not self.rivals or self.live is None:
            return False
        return _SELF in find_hopeless({**self.rivals, _SELF: self.live.interval})

    def status(self) -> str:
        """One line for the progress bar (`LiveCeiling.text`), "" while there is no estimate."""
        return "" if self.live is None else self.live.text()


def past_points(metrics_path: Path, upto_step: int) -> list[tuple[float, float]]:
    """(FLOPs, overall) of the eval records up to `upto_step` of a resumed run, step 0 first."""
    if not metrics_path.exists():
        return []
    return [(float(r.get("flops") or 0.0), float(r["metrics"]["eval/overall"])) for r in read_records(metrics_path)
            if r.get("kind") == "eval" and r.get("step", 0) <= upto_step
            and (r.get("metrics") or {}).get("eval/overall") is not None]


def final_interval(metrics_path: Path) -> tuple[float, float] | None:
    """(lo, hi) of the last eval record that carries a ceiling interval, or None."""
    found = None
    for r in read_records(metrics_path) if metrics_path.exists() else []:
        m = r.get("metrics") or {}
        if r.get("kind") == "eval" and m.get("ceiling/lo") is not None and m.get("ceiling/hi") is not None:
            found = (float(m["ceiling/lo"]), float(m["ceiling/hi"]))
    return found


def sibling_prior(metrics_paths: list[Path]) -> SiblingPrior | None:
    """The prior from finished sibling runs' curves (None with fewer than two usable fits). Only the
    finished fit's shape is needed, so it is fitted without bootstrap intervals. A sibling with no fit
    (too few points, or too few before a collapse) lends no shape."""
    fits = []
    for path in metrics_paths:
        curve = read_curve_run(path)
        try:
            fits.append(fit_ceiling(curve.x, curve.y, p_start=curve.p_start, source=str(path),
                                    options=FitOptions(n_boot=0)))
        except RetuInputError:
            continue
    return build_sibling_prior(fits)
