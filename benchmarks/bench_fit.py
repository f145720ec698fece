"""Ceiling fits on the paper authors' RL curves (retu.scaling.AUTHORS_CURVES): retu's recipe vs a plain
bounded soft-L1 fit.

Prints one table (A_post against the paper's camera-ready figure, flags, held-out RMSE) and the
summary the issue asks for: mean / max |A_post - camera_ready| over unflagged curves, flagged count,
median held-out RMSE, and wall time of each fitter.

    .venv/bin/python benchmarks/bench_fit.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from retu.scaling import AUTHORS_CURVES, fit_ceiling, load_curves
from retu.scaling.forms import sigmoid_power

DATA = AUTHORS_CURVES


def plain_fit(x, y, p_start):
    """The baseline the issue names: bounded soft-L1 least squares, no trimming, no saturation check."""
    best = None
    for a0 in (y.max(), y.max() + 5):
        for c0 in (x.max() / 10, x.max()):
            res = least_squares(lambda th: sigmoid_power(x, p_start, th[0], th[1], th[2]) - y, [a0, c0, 1.0],
                                bounds=([0, 1e-6, 1e-4], [100, 1e6, 10]), loss="soft_l1")
            best = res if best is None or res.cost < best.cost else best
    return best.x[0]


def camera_ready(scenes: dict, curve) -> float:
    """The camera-ready figure's A_post of an RL curve; scenes: references.json's "scenes"."""
    return scenes["base" if curve.sft_step == 0 else curve.scene]["checkpoints"][str(curve.sft_step)]["camera_ready"]["A_post"]


def main() -> int:
    refs = json.loads((DATA / "references.json").read_text())["scenes"]
    curves = [c for c in load_curves([DATA]) if c.kind == "rl"]
    t0 = time.perf_counter()
    fits = [fit_ceiling(c.x, c.y, p_start=c.p_start, source=c.source) for c in curves]
    t_retu = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = [plain_fit(c.x, c.y, c.p_start) for c in curves]
    t_plain = time.perf_counter() - t0
    print(f"{'curve':28} {'ref':>5} {'retu':>6} {'err':>6} {'plain':>6} {'err':>6} {'ymax':>5} {'hold':>5}  flags")
    err, err_plain, hold, flagged = [], [], [], []
    for c, f, p in zip(curves, fits, plain, strict=True):
        ref = camera_ready(refs, c)
        flags = ",".join(n for n, on in (("collapsed", f.collapsed), ("unsaturated", not f.saturated)) if on)
        err_plain.append(p - ref)
        if flags:
            flagged.append(c.source)
        else:
            err.append(f.A - ref)
            hold.append(f.holdout_rmse)
        name = "/".join(Path(c.source).parts[-2:])
        print(f"{name:28} {ref:5.1f} {f.ceiling:6.2f} {f.ceiling - ref:+6.2f} {p:6.2f} {p - ref:+6.2f} "
              f"{c.y.max():5.1f} {f.holdout_rmse or float('nan'):5.2f}  {flags}")
    err, err_plain = np.abs(err), np.abs(err_plain)
    print(f"\nretu : unflagged n={len(err)} mean |err| {err.mean():.2f}, max {err.max():.2f}; flagged {len(flagged)}; "
          f"median held-out RMSE {np.median(hold):.2f}; {t_retu:.1f} s")
    print(f"plain: all n={len(err_plain)} mean |err| {err_plain.mean():.2f}, max {err_plain.max():.2f}; {t_plain:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
