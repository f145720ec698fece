"""What one seed's pipeline runs measured, as the findings' evidence (`findings.SeedEvidence`).

A pipeline seed directory holds one SFT run per dataset (`<name>/`), the RL branches (`rl/`, the
base model's run is `rl/base`) and optional synchronized paradigms from the base model
(`paradigms/<method>/`). Every number comes from the runs' metrics.jsonl: an accuracy from its eval
record (`eval/overall`, with a Wilson interval over its `eval/n` problems), a ceiling from
`retu.scaling.fit_ceiling` with its bootstrap interval.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retu.errors import RetuInputError
from retu.intervals import eval_interval
from retu.metrics import read_records, run_start
from retu.report.build import Report
from retu.report.estimates import Estimate, fit_estimate
from retu.report.findings import Branch, SceneEvidence, SeedEvidence
from retu.report.paradigms import fit_paradigm, paradigm_curve
from retu.scaling.curves import read_curve_run
from retu.scaling.fit import FitOptions, detect_collapse

def eval_estimate(metrics: dict) -> Estimate | None:
    """An eval record's overall accuracy with its 95% interval (`retu.intervals.eval_interval`)."""
    value = metrics.get("eval/overall")
    if value is None:
        return None
    ci = eval_interval(metrics) or (math.nan, math.nan)
    return Estimate(float(value), *ci, metrics.get("eval/n"), how="binomial")


def _evals(path: Path) -> list[tuple[int, Estimate]]:
    out = []
    for r in read_records(path):
        est = eval_estimate(r.get("metrics") or {}) if r.get("kind") == "eval" else None
        if est is not None:
            out.append((int(r.get("step") or 0), est))
    return out


def data_shape(config: dict) -> tuple[int | None, float | None]:
    """(training problems, mean operations of the training levels) of an SFT run on the embedded task."""
    data = config.get("data") or {}
    if data.get("train") != "arith":
        return None, None
    levels = data.get("arith_train_steps") or []
    return data.get("arith_n_train"), (sum(levels) / len(levels) if levels else None)


def sft_ceiling(path: Path) -> Estimate | None:
    """Pure SFT's fitted ceiling: its accuracy curve against cumulative SFT FLOPs, from step 0."""
    try:
        curve = read_curve_run(path)
    except RetuInputError:
        return None
    if curve.kind != "sft" or len(curve.x) < 5 or curve.x[0] != 0:
        return None
    fit, _ = fit_paradigm(curve.x, curve.y, str(path))
    return None if fit is None else fit_estimate(fit)


def scene_evidence(sft_dir: Path, report: Report, branch_starts: dict[int, Estimate],
                   collapsed: dict[int, Estimate] | None = None) -> SceneEvidence:
    """One dataset's evidence: its SFT run, its sub-phases and the RL branches of its checkpoints.

    Args:
        sft_dir: The dataset's SFT run directory (its name is the scene).
        report: The seed's report (phases and fits).
        branch_starts: Step-0 evaluations of the RL branches from its checkpoints, by SFT step (the
            same checkpoints pure SFT ends in).
        collapsed: By SFT step, the best evaluation of each branch that collapsed before it could be
            fitted, or whose collapsed fit has no interval (`collapsed_best`); it stands as that
            branch's A_post.
    """
    path = sft_dir / "metrics.jsonl"
    scene, phases = sft_dir.name, report.phases.get(sft_dir.name)
    if phases is None:
        raise RetuInputError(f"{sft_dir}: no validation losses; not an SFT run of this pipeline")
    checkpoints = _evals(path) + list(branch_starts.items())
    n_train, difficulty = data_shape(run_start(path).get("config") or {})
    collapsed = collapsed or {}
    branches = [Branch(c.sft_step, phases.phase_at(c.sft_step), fit_estimate(f))
                for c, f in report.fits if c.scene == scene and c.sft_step and c.sft_step not in collapsed]
    branches += [Branch(step, phases.phase_at(step), best) for step, best in collapsed.items()]
    best = max((e for _, e in checkpoints), key=lambda e: e.value) if checkpoints else None
    return SceneEvidence(scene, n_train, difficulty, phases.L_min, phases.recommended_step, best,
                         credible_ceiling(sft_ceiling(path), best), tuple(sorted(branches, key=lambda b: b.step)))


def collapsed_best(evals: list[tuple[int, Estimate]]) -> Estimate | None:
    """The best evaluation (branch point included) of an RL run that collapsed too early to fit
    (`retu.scaling.fit.detect_collapse` on its points after the branch point), else None: stopping
    at that checkpoint is the most its RL reached.

    >>> from retu.report.estimates import binomial_estimate as b
    >>> collapsed_best([(0, b(29.0, 400)), (6, b(26.0, 400)), (12, b(17.0, 400)), (18, b(16.5, 400))]).text()
    '29.0 [24.8, 33.6] (n=400, collapsed, best checkpoint)'
    """
    if len(evals) < 3:
        return None
    y = np.array([e.value for _, e in evals[1:]])
    opts = FitOptions()  # the fit's own collapse rule, so a branch is "collapsed" here exactly when the fit says so
    if detect_collapse(np.arange(len(y), dtype=float), y, drop=opts.collapse_drop, min_points=opts.collapse_points,
                       crash_frac=opts.crash_frac) is None:
        return None
    best = max((e for _, e in evals), key=lambda e: e.value)
    return Estimate(best.value, best.lo, best.hi, best.n, how="collapsed, best checkpoint")


def credible_ceiling(ceiling: Estimate | None, best: Estimate | None) -> Estimate | None:
    """Pure SFT's ceiling is at least its best checkpoint (training could stop there). A fit whose
    interval ends below that checkpoint (e.g. a late rise trimmed as an outlier) has not identified
    the ceiling: it becomes "at least the best checkpoint", [best's lower end, inf).

    >>> credible_ceiling(Estimate(23.8, 21.0, 41.3), Estimate(46.0, 41.2, 50.9)).text()
    '46.0 [41.2, inf] (at least the best checkpoint)'
    """
    if ceiling is None or best is None or not ceiling.known or ceiling.hi >= best.value:
        return ceiling
    return Estimate(best.value, best.lo, math.inf, how="at least the best checkpoint")


def seed_evidence(seed: int, sft_dirs: list[Path], rl_root: Path, report: Report,
                  paradigm_dirs: dict[str, Path]) -> SeedEvidence:
    """Everything one seed measured; `sft_dirs[0]` is the primary dataset."""
    starts: dict[str, dict[int, Estimate]] = {}
    collapsed: dict[str, dict[int, Estimate]] = {}
    # A collapsed fit without an interval has not measured its ceiling: like a branch that collapsed
    # before it could be fitted, it stands with its best checkpoint.
    fitted = {Path(c.source).resolve() for c, f in report.fits if not f.collapsed or fit_estimate(f).known}
    for log in sorted(rl_root.glob("*/metrics.jsonl")):
        meta = run_start(log).get("curve") or {}
        evals = _evals(log)
        if meta.get("sft_step") and evals and evals[0][0] == 0:
            starts.setdefault(str(meta.get("scene")), {})[int(meta["sft_step"])] = evals[0][1]
            if log.resolve() not in fitted and (best := collapsed_best(evals)) is not None:
                collapsed.setdefault(str(meta.get("scene")), {})[int(meta["sft_step"])] = best
    base = next((fit_estimate(f) for c, f in report.fits if c.scene == "base"), None)
    paradigms = {}
    for method, run_dir in paradigm_dirs.items():
        ceiling = paradigm_curve(method, method, run_dir).ceiling
        if ceiling is not None:
            paradigms[method] = ceiling
    scenes = tuple(scene_evidence(d, report, starts.get(d.name, {}), collapsed.get(d.name)) for d in sft_dirs)
    return SeedEvidence(seed, scenes, base, paradigms)
