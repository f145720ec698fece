"""Early ceilings: `retu.scaling.predict_ceiling` on the first 30 / 50 / 70 / 100% of each curve's compute.

The camera-ready A_post values of the paper's figure come with the authors' curves (package data,
retu.scaling.AUTHORS_CURVES / references.json).

Part 1, the paper authors' 24 RL curves (retu.scaling.AUTHORS_CURVES). For each fraction, fitted with
the prior from the finished fits of the other curves of the same scene (what `retu fit DIR --upto F
--prior DIR` does) and alone: median and max |A - camera-ready| (A: the fit's central value, also when
it reports A null), how often the interval holds the camera-ready value, the same two against the
full-curve fit of the same curve (`fit_ceiling` on all points, a second reference), the median
interval width, and the flags (A null: a lower bound only; collapsed). The last row is the finished
recipe itself (`retu fit` without --upto, its bootstrap interval). Then the curves whose interval
misses the camera-ready value, and the issue's finished-curve check (mean and max |A - camera-ready|
over the unflagged curves; benchmarks/bench_fit.py has the per-curve table).

Part 2, simulated curves where the truth is known (benchmarks/bench_fit_coverage.py's simulator and
scenarios): a family of curves with ceilings TRUE_A +- 4, ln C_mid and ln B spread by 0.25 around
bench_fit_coverage's curve; per run, 6 finished siblings make the prior of one more curve, which is
fitted at 30%, 50% and 100% of its compute with and without that prior.

    nice -n 10 .venv/bin/python benchmarks/bench_early.py                 # ~5 minutes on one core
    nice -n 10 .venv/bin/python benchmarks/bench_early.py --sim-runs 0    # part 1 only, ~1.5 minutes
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks are scripts, not a package
from bench_fit import camera_ready  # noqa: E402
from bench_fit_coverage import C_MID, P0, SCENARIOS, SLOPE, TRUE_A, simulate_curve  # noqa: E402

from retu.scaling import (AUTHORS_CURVES, FitOptions, build_sibling_prior, fit_ceiling, load_curves,  # noqa: E402
                          predict_ceiling, sibling_prior_for)

REFERENCES = AUTHORS_CURVES / "references.json"
FRACTIONS = (0.3, 0.5, 0.7, 1.0)
SIM_FRACTIONS = (0.3, 0.5, 1.0)
SIBLINGS = 6
HEADER = ("| points used | prior | median err | max err | holds camera-ready | median err vs full fit | "
          "holds full fit | median width | A null | collapsed |")


def score(fits: list, truths: list[float]) -> dict:
    """Errors of the central values, coverage by the intervals, widths and flags of fits against truths."""
    err = np.array([abs(f.ceiling - t) for f, t in zip(fits, truths, strict=True)])
    held = sum(f.ceiling_ci[0] <= t <= f.ceiling_ci[1] for f, t in zip(fits, truths, strict=True))
    width = np.array([f.ceiling_ci[1] - f.ceiling_ci[0] for f in fits])
    return {"median": float(np.median(err)), "max": float(err.max()), "held": int(held), "n": len(fits),
            "width": float(np.median(width)), "null": sum(f.A is None for f in fits),
            "collapsed": sum(f.collapsed for f in fits)}


def table_row(label: str, prior: str, fits: list, camera: list[float], full: list[float]) -> str:
    cam, ful = score(fits, camera), score(fits, full)
    return (f"| {label} | {prior} | {cam['median']:.2f} | {cam['max']:.2f} | {cam['held']} of {cam['n']} | "
            f"{ful['median']:.2f} | {ful['held']} of {ful['n']} | {cam['width']:.2f} | {cam['null']} | "
            f"{cam['collapsed']} |")


def unflagged_errors(fits: list, camera: list[float]) -> str:
    """Mean and max |A - camera-ready| over the fits with A a number and no collapse."""
    err = np.array([abs(f.A - t) for f, t in zip(fits, camera, strict=True) if f.A is not None and not f.collapsed])
    return f"mean {err.mean():.2f}, max {err.max():.2f} over {len(err)} unflagged curves"


def authors(scenes: dict) -> None:
    """Part 1: the table, the misses and the finished-curve check on the authors' curves."""
    curves = [c for c in load_curves([AUTHORS_CURVES]) if c.kind == "rl"]
    full = [(c, fit_ceiling(c.x, c.y, p_start=c.p_start, source=c.source)) for c in curves]
    camera = [camera_ready(scenes, c) for c in curves]
    full_a = [f.ceiling for _, f in full]
    print("## The paper authors' 24 RL curves\n\n" + HEADER + "\n" + "| --- " * 10 + "|")
    fitted = {}
    for frac in FRACTIONS:
        for label, with_prior in (("siblings", True), ("alone", False)):
            fitted[(frac, with_prior)] = fits = [
                predict_ceiling(c.x, c.y, upto=frac, p_start=c.p_start, source=c.source,
                                prior=sibling_prior_for(c, full) if with_prior else None) for c in curves]
            print(table_row(f"first {frac:.0%} of compute", label, fits, camera, full_a), flush=True)
    print(table_row("all (finished recipe, no --upto)", "-", [f for _, f in full], camera, full_a))
    print("\nIntervals (with siblings) that miss the camera-ready value:")
    misses = [(frac, c, f, t) for frac in FRACTIONS for c, f, t in zip(curves, fitted[(frac, True)], camera, strict=True)
              if not f.ceiling_ci[0] <= t <= f.ceiling_ci[1]]
    for frac, c, f, t in misses:
        print(f"  {frac:.0%} {'/'.join(Path(c.source).parts[-2:]):26} camera-ready {t:5.1f}, full fit "
              f"{full_a[curves.index(c)]:5.1f}, max observed {c.y.max():5.1f}: {f.ceiling:.2f} "
              f"[{f.ceiling_ci[0]:.1f}, {f.ceiling_ci[1]:.1f}]")
    print(f"\nFinished curves, |A - camera-ready|: finished recipe {unflagged_errors([f for _, f in full], camera)}; "
          f"--upto 1 with siblings {unflagged_errors(fitted[(1.0, True)], camera)}")


def draw_member(rng: np.random.Generator) -> tuple[float, float, float]:
    """(ceiling, C_mid, B) of one curve of the simulated family."""
    return (TRUE_A + rng.uniform(-4.0, 4.0), C_MID * math.exp(rng.normal(0.0, 0.25)),
            SLOPE * math.exp(rng.normal(0.0, 0.25)))


def simulate(x_max: float, noise: float, n: int, runs: int, seed: int = 0) -> dict:
    """{(fraction, with prior): [(holds truth, width, |error|, A null)]} over `runs` families."""
    rng = np.random.default_rng(seed)
    out = {(frac, p): [] for frac in SIM_FRACTIONS for p in (True, False)}
    for _ in range(runs):
        siblings = []
        for _ in range(SIBLINGS):
            a, c, b = draw_member(rng)
            x, y = simulate_curve(rng, x_max, noise, n, ceiling=a, c_mid=c, slope=b)
            siblings.append(fit_ceiling(x, y, p_start=P0, options=FitOptions(n_boot=0)))
        prior = build_sibling_prior(siblings)
        a, c, b = draw_member(rng)
        x, y = simulate_curve(rng, x_max, noise, n, ceiling=a, c_mid=c, slope=b)
        for frac, with_prior in out:
            f = predict_ceiling(x, y, upto=frac, p_start=P0, prior=prior if with_prior else None)
            lo, hi = f.ceiling_ci
            out[(frac, with_prior)].append((lo <= a <= hi, hi - lo, abs(f.ceiling - a), f.A is None))
    return out


def simulated(runs: int) -> None:
    """Part 2: coverage of the true ceiling on simulated families."""
    print(f"\n## Simulated curves ({runs} families per scenario, {SIBLINGS} finished siblings each)\n")
    print("| x_max | noise | n | points used | prior | holds truth | median width | median err | A null |")
    print("| --- " * 9 + "|")
    for x_max, noise, n in SCENARIOS:
        for (frac, with_prior), rows in simulate(x_max, noise, n, runs).items():
            r = np.array(rows, dtype=float)
            print(f"| {x_max:.0f} | {noise} | {n} | first {frac:.0%} | {'siblings' if with_prior else 'alone'} | "
                  f"{r[:, 0].mean():.2f} | {np.median(r[:, 1]):.2f} | {np.median(r[:, 2]):.2f} | {r[:, 3].mean():.2f} |",
                  flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-runs", type=int, default=20, help="simulated families per scenario (0: skip part 2)")
    args = parser.parse_args()
    if args.sim_runs < 0:
        parser.error(f"--sim-runs must be >= 0, got {args.sim_runs}")
    authors(json.loads(REFERENCES.read_text())["scenes"])
    if args.sim_runs:
        simulated(args.sim_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
