"""`retu report` on synthetic run directories written through JsonlLogger (the only log writer)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from retu.metrics import JsonlLogger
from retu.scaling.forms import sigmoid_power

SFT_STEPS = [0, 100, 200, 300, 400, 500]
VAL = [1.2, 0.80, 0.70, 0.705, 0.75, 0.80]  # min 0.70 at 200; 300 Stable; 400 Mild (7%); 500 Mild (14%? Severe)


def _write_runs(root, scenes=("arith",)):
    for k, scene in enumerate(scenes):
        sft = JsonlLogger(root / scene / "sft" / "metrics.jsonl", run_id=f"{scene}-sft")
        sft.log("run_start", step=0, config={"kind": "sft"}, curve={"kind": "sft", "scene": scene})
        for step, v in zip(SFT_STEPS, VAL, strict=True):
            sft.log("eval", step=step, flops=step * 1e15, metrics={"loss/val": v + 0.05 * k})
        for j, (step, p0) in enumerate([(100, 40.0), (200, 50.0), (300, 52.0)]):
            rl = JsonlLogger(root / scene / f"rl-{step}" / "metrics.jsonl", run_id=f"{scene}-rl-{step}")
            rl.log("run_start", step=0, config={"kind": "rl"},
                   curve={"kind": "rl", "scene": scene, "sft_step": step, "sft_eflops": step * 1e-3})
            x = np.linspace(0.0, 3.0, 31)
            y = sigmoid_power(x, p0, 70.0 + 2 * j - 5 * k, 0.5, 1.5) + np.random.default_rng(j).normal(0, 0.2, 31)
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                rl.log("eval", step=10 * i, flops=5e17 + xi * 1e18, metrics={"eval/overall": float(yi)})


def test_report_files_and_numbers(tmp_path):
    _write_runs(tmp_path)
    r = subprocess.run([sys.executable, "-m", "retu", "report", tmp_path, "--out", tmp_path / "out"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Recommended switch to RL: step 200" in md
    assert "| 400 | 0.7500 | Mild |" in md
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    (table,) = data["tables"]
    assert [row["step"] for row in table["rows"]] == [100, 200, 300]
    assert table["rows"][0]["A_post"] == pytest.approx(70.0, abs=1.0)
    assert table["rows"][0]["P_sft"] == pytest.approx(40.0, abs=1.0)
    assert table["best_step"] == 300
    csv_lines = (tmp_path / "out" / "decomposition.csv").read_text().splitlines()
    assert csv_lines[0].startswith("seed,scene,step,x_sft,P_sft,P_sft_lo,P_sft_hi,PL_rl,A_post,A_lo,A_hi") and len(csv_lines) == 4
    for name in ("phases.png", "fits.png", "decomposition.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_correlation_with_three_datasets(tmp_path):
    _write_runs(tmp_path, scenes=("small", "mid", "large"))
    # RL from the base model, higher than every branch: it is row 0 of every table, never a dataset's A_post.
    base = JsonlLogger(tmp_path / "base" / "metrics.jsonl", run_id="base")
    base.log("run_start", step=0, config={"kind": "rl"}, curve={"kind": "rl", "scene": "base", "sft_step": 0})
    x = np.linspace(0.0, 3.0, 31)
    for i, (xi, yi) in enumerate(zip(x, sigmoid_power(x, 30.0, 95.0, 0.5, 1.5), strict=True)):
        base.log("eval", step=10 * i, flops=xi * 1e18, metrics={"eval/overall": float(yi)})
    from retu.report.build import build_report

    rep = build_report([tmp_path])
    # Each scene's minimum loss is 0.05 higher and its best ceiling 5 points lower: a perfect inverse.
    assert rep.correlation is not None and rep.correlation.spearman_rho == pytest.approx(-1.0)
    assert [t.rows[0].step for t in rep.tables] == [0, 0, 0]


def test_report_no_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "retu", "report", tmp_path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no retu runs" in r.stderr


def test_a_flat_branch_shows_its_bounds_and_no_shape_parameters(tmp_path):
    _write_runs(tmp_path)
    rl = JsonlLogger(tmp_path / "arith" / "rl-400" / "metrics.jsonl", run_id="arith-rl-400")
    rl.log("run_start", step=0, config={"kind": "rl"}, curve={"kind": "rl", "scene": "arith", "sft_step": 400,
                                                            "sft_eflops": 0.4})
    flat = [6.5, 6.0, 7.0, 6.5, 6.0, 7.5, 6.5, 6.0, 7.0]
    for i, y in enumerate(flat):
        rl.log("eval", step=5 * i, flops=5e17 + i * 1e17, metrics={"eval/overall": y})
    r = subprocess.run([sys.executable, "-m", "retu", "report", tmp_path, "--out", tmp_path / "out"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "out" / "report.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| 400 | 0.4"))
    assert row.split(" | ")[5:7] == ["-", "-"] and "at bound (B=10, gain at end=1)" in row, row
    # The table is followed by what its flags mean: here only "at bound".
    legend = lines[lines.index(row) + 2]
    assert legend.startswith("Flags: at bound = the fit left a parameter on a bound") and "unsaturated" not in legend


def test_flag_legend_names_each_flag_used_once_in_a_fixed_order():
    from retu.scaling.decompose import FLAG_MEANINGS, flag_legend

    assert flag_legend([]) == flag_legend(["", ""]) == ""
    text = flag_legend(["at bound (B=10)", "collapsed", "at bound (A=100)", ""])
    assert text == f"Flags: collapsed = {FLAG_MEANINGS['collapsed']}; at bound = {FLAG_MEANINGS['at bound']}."


def test_a_pruned_branch_is_noted_with_the_compute_it_saved(tmp_path):
    from retu.report.build import build_report

    _write_runs(tmp_path)
    log = JsonlLogger(tmp_path / "arith" / "rl-100" / "metrics.jsonl", run_id="arith-rl-100")
    log.log("event", step=300, event="pruned", interval=[55.0, 62.5], best_branch="arith-step300", best_lo=66.0,
            steps_left=20, saved_flops=2.5e17)
    log.log("run_end", step=300, status="pruned")
    notes = [n for n in build_report([tmp_path]).notes if "pruned" in n]
    assert notes == ["rl-100: pruned at step 300 with 20 steps left: its ceiling interval [55.0, 62.5] lies below the "
                     "lower bound 66.0 of arith-step300; compute saved 0.25 EFLOPs (rerun with prune: false to "
                     "finish it)"]
    log.log("run_end", step=500, status="ok")  # resumed with pruning off and finished
    assert not [n for n in build_report([tmp_path]).notes if "pruned" in n]
