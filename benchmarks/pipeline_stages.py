"""Seconds of every stage of a `retu pipeline` run directory, from its metrics.jsonl records.

    python benchmarks/pipeline_stages.py runs/pipeline [--start UNIX_SECONDS]

One row per stage (run_start to run_end of its last attempt): steps, evaluations, seconds, seconds
per step and per evaluation (RL: the logged `perf/step_s` and `perf/eval_s`). With --start (when the
command began), the time before the first stage (install, base-model pretraining, start-up) and
after the last one (fits and report) is shown too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def stage_rows(root: Path) -> list[dict]:
    rows = []
    for path in sorted(root.rglob("metrics.jsonl"), key=lambda p: p.stat().st_mtime):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        starts = [r for r in records if r["kind"] == "run_start"]
        ends = [r for r in records if r["kind"] == "run_end"]
        if not starts or not ends:
            continue
        evals = [r for r in records if r["kind"] == "eval" and "eval/overall" in (r.get("metrics") or {})]
        train = [r for r in records if r["kind"] == "train"]
        step_s = [r["metrics"]["perf/step_s"] for r in train if r["metrics"].get("perf/step_s") is not None]
        eval_s = [r["metrics"]["perf/eval_s"] for r in evals if r["metrics"].get("perf/eval_s") is not None]
        rows.append({"stage": str(path.parent.relative_to(root)), "kind": starts[-1]["config"]["kind"],
                     "t0": starts[0]["t"], "t1": ends[-1]["t"], "steps": ends[-1].get("step") or 0,
                     "evals": len(evals), "step_s": sum(step_s) / len(step_s) if step_s else None,
                     "eval_s": sum(eval_s) / len(eval_s) if eval_s else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--start", type=float, default=None, help="unix time the command started")
    args = parser.parse_args()
    rows = stage_rows(args.root)
    if not rows:
        raise SystemExit(f"{args.root}: no finished stages")
    print(f"{'stage':<34} {'kind':>4} {'steps':>6} {'evals':>6} {'s':>7} {'s/step':>7} {'s/eval':>7}")
    if args.start is not None:
        print(f"{'(install, base model, start-up)':<34} {'':>4} {'':>6} {'':>6} {rows[0]['t0'] - args.start:7.1f}")
    for r in rows:
        per_step = f"{r['step_s']:7.2f}" if r["step_s"] is not None else f"{'':>7}"
        per_eval = f"{r['eval_s']:7.2f}" if r["eval_s"] is not None else f"{'':>7}"
        print(f"{r['stage']:<34} {r['kind']:>4} {r['steps']:6d} {r['evals']:6d} {r['t1'] - r['t0']:7.1f} {per_step} {per_eval}")
    report = args.root / "report" / "report.md"
    if report.exists():
        print(f"{'(fits and report)':<34} {'':>4} {'':>6} {'':>6} {report.stat().st_mtime - rows[-1]['t1']:7.1f}")
    print(f"{'stages total':<34} {'':>4} {'':>6} {'':>6} {sum(r['t1'] - r['t0'] for r in rows):7.1f}")


if __name__ == "__main__":
    main()
