"""Curves for `retu fit`: (compute, performance) points read from curve JSON files or retu runs.

Curve JSON (the schema of the authors' curves in retu/scaling/authors): {"scene", "kind": "sft"|"rl", "sft_step",
"sft_eflops", "branch_start": {"overall"}, "points": [{"eflops", "overall", "step"?}]}; RL x is
EFLOPs since the branch point, SFT x is cumulative SFT EFLOPs.

A retu run's metrics.jsonl gives a curve from its `eval` records (metric `eval/overall`, cumulative
`flops`): x is EFLOPs since the first eval record, whose value is the branch point (an SFT run's x is
its cumulative EFLOPs, from its step-0 evaluation). Its `run_start` record may carry `curve: {"kind",
"scene", "sft_step", "sft_eflops"}`; otherwise its config's kind says sft or rl (rl when absent), and
the curve is named by its run_id.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retu.errors import RetuInputError, read_json
from retu.flops import EFLOP
from retu.intervals import eval_interval
from retu.metrics import read_records

OVERALL = "eval/overall"


@dataclass(frozen=True)
class Curve:
    """One curve. x: [N] EFLOPs (RL: since the branch point; SFT: cumulative); y: [N] accuracy in %."""

    source: str
    kind: str
    scene: str
    sft_step: int | None
    sft_eflops: float | None
    x: np.ndarray
    y: np.ndarray
    p_start: float | None
    steps: np.ndarray | None
    n_dropped: int
    p_start_ci: tuple[float, float] | None = None


def _number(value, path: Path, what: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RetuInputError(f"{path}: {what} is not a number ({value!r})")
    return float(value)


def _points(d: dict, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    pts = d.get("points")
    if not isinstance(pts, list) or not pts:
        raise RetuInputError(f"{path}: 'points' must be a non-empty list")
    xs, ys, steps = [], [], []
    for i, p in enumerate(pts):
        for key in ("eflops", "overall"):
            if not isinstance(p, dict) or key not in p:
                raise RetuInputError(f"{path}: point {i} has no '{key}'")
        xs.append(_number(p["eflops"], path, f"point {i} 'eflops'"))
        ys.append(_number(p["overall"], path, f"point {i} 'overall'"))
        steps.append(p.get("step"))
    x, y = np.array(xs), np.array(ys)
    keep = np.isfinite(x) & np.isfinite(y)
    step_arr = np.array(steps, dtype=float)[keep] if all(s is not None for s in steps) else None
    return x[keep], y[keep], step_arr, int((~keep).sum())


def read_curve_json(path: Path) -> Curve:
    """Read one curve file of the shared schema; errors name the file and the field."""
    d = read_json(path)
    if not isinstance(d, dict) or d.get("kind") not in ("sft", "rl"):
        raise RetuInputError(f"{path}: not a curve file (needs \"kind\": \"sft\" or \"rl\" and \"points\")")
    x, y, steps, dropped = _points(d, path)
    p_start = None
    if d["kind"] == "rl":
        start = d.get("branch_start")
        if not isinstance(start, dict) or "overall" not in start:
            raise RetuInputError(f"{path}: RL curve has no 'branch_start.overall' (performance at the branch point)")
        p_start = _number(start["overall"], path, "'branch_start.overall'")
    return Curve(str(path), d["kind"], str(d.get("scene") or path.parent.name), d.get("sft_step"),
                 d.get("sft_eflops"), x, y, p_start, steps, dropped)


def read_curve_run(path: Path) -> Curve:
    """Read the eval curve of a retu run (metrics.jsonl); see the module docstring."""
    records = read_records(path)
    start = next((r for r in records if r.get("kind") == "run_start"), {})
    meta = start.get("curve") or {}
    evals = [r for r in records if r.get("kind") == "eval" and OVERALL in (r.get("metrics") or {})]
    if not evals:
        raise RetuInputError(f"{path}: no eval records with '{OVERALL}'")
    if any(r.get("flops") is None for r in evals):
        raise RetuInputError(f"{path}: eval records without cumulative 'flops'")
    flops = np.array([float(r["flops"]) for r in evals])
    y = np.array([math.nan if r["metrics"][OVERALL] is None else float(r["metrics"][OVERALL]) for r in evals])
    steps = np.array([r.get("step") or 0 for r in evals], dtype=float)
    kind = meta.get("kind") or (start.get("config") or {}).get("kind") or "rl"
    x = (flops - flops[0]) / EFLOP if kind == "rl" else flops / EFLOP
    keep = np.isfinite(y)
    p_start = float(y[0]) if kind == "rl" and keep[0] else None
    if kind == "rl" and p_start is None:
        raise RetuInputError(f"{path}: the first eval record (the branch point) has no '{OVERALL}'")
    sl = slice(1, None) if kind == "rl" else slice(None)
    return Curve(str(path), kind, str(meta.get("scene") or start.get("run_id") or path.parent.name),
                 meta.get("sft_step"), meta.get("sft_eflops"), x[sl][keep[sl]], y[sl][keep[sl]],
                 p_start, steps[sl][keep[sl]], int((~keep).sum()),
                 eval_interval(evals[0]["metrics"]) if kind == "rl" else None)


def _is_curve_file(path: Path) -> bool:
    """Cheap test used when scanning directories: JSON with a top-level "kind" of sft/rl."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(d, dict) and d.get("kind") in ("sft", "rl") and "points" in d


def load_curves(paths: list[str | Path]) -> list[Curve]:
    """Load curves from files and directories (recursive; non-curve JSON in directories is skipped).

    A path given explicitly must be a curve file or metrics.jsonl; errors name it.
    """
    curves: list[Curve] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise RetuInputError(f"{path}: file not found")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if _is_curve_file(p))
            runs = sorted(path.rglob("metrics.jsonl"))
            if not found and not runs:
                raise RetuInputError(f"{path}: no curve files or metrics.jsonl found")
            curves += [read_curve_json(p) for p in found] + [read_curve_run(p) for p in runs]
        elif path.suffix == ".jsonl":
            curves.append(read_curve_run(path))
        else:
            curves.append(read_curve_json(path))
    return curves
