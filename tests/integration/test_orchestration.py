"""`retu pipeline` and `retu compare` end to end on tiny:1m: every stage runs, a killed run resumes to
the same report without duplicated records, and a finished stage is never run again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import cli_app

from retu.errors import RetuInputError
from retu.metrics import read_records

pytestmark = pytest.mark.integration

DATA = ["data.arith_n_train=64", "data.arith_n_val=16", "data.arith_n_eval=16", "eval.max_new_tokens=8",
        "model.name_or_path=tiny:1m"]
SFT = [*DATA, "optim.max_steps=8", "optim.batch_size=8", "sft.val_every=2", "eval.every=2"]
RL = [*DATA, "optim.max_steps=4", "optim.batch_size=2", "rollout.group_size=2", "eval.every=1",
      "data.max_response_len=32", "log.save_every=1", "data.arith_train_steps=[1, 2]"]


def retu(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retu", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("metrics.jsonl"))


def assert_no_duplicates(root: Path) -> None:
    for run in run_dirs(root):
        records = read_records(run / "metrics.jsonl")
        for kind in ("train", "eval"):
            steps = [r["step"] for r in records if r["kind"] == kind]
            assert steps == sorted(set(steps)), (run, kind, steps)
        assert records[-1]["kind"] == "run_end" and records[-1]["status"] == "ok", run


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_when(proc: subprocess.Popen, path: Path, timeout: float = 400) -> list[int]:
    """SIGKILL `proc` once `path` exists; returns the child processes it had then."""
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill point"
    kids = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return kids


def pipeline_config(root: Path, name: str, workers: int = 1) -> Path:
    return write_yaml(root / f"{name}.yaml", {"run_dir": str(root / name), "sft_overrides": SFT,
                                              "rl_overrides": RL, "branches": [4], "workers": workers})


@pytest.fixture(scope="module")
def whole_pipeline(tmp_path_factory) -> Path:
    """The run directory of one uninterrupted pipeline (1 worker): the report a killed run must reproduce."""
    root = tmp_path_factory.mktemp("pipeline")
    whole = retu("pipeline", pipeline_config(root, "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    return root / "whole"


def test_pipeline_killed_mid_rl_resumes_to_the_same_report(tmp_path, whole_pipeline):
    # 2 workers (RL from base and the branch side by side) against the whole run's 1: the kill also has
    # worker processes to take down, and the report must not depend on the worker count. A run with one
    # worker resumes a stage the same way (test_rl.py and test_sft.py kill single runs).
    killed = pipeline_config(tmp_path, "killed", workers=2)
    proc = subprocess.Popen([sys.executable, "-m", "retu", "pipeline", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rl_dir = tmp_path / "killed" / "seed-0" / "rl" / "arith-step4"
    kids = kill_when(proc, rl_dir / "checkpoints" / "step-2" / "retu_state.json")
    assert not (rl_dir / "checkpoints" / "step-4").exists()  # killed in the middle of the last RL stage
    assert len(kids) >= 2
    deadline = time.time() + 10
    while any(map(alive, kids)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, kids))  # no worker outlives its killed pipeline to write on
    resumed = retu("pipeline", killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[pipeline] seed 0: SFT" in resumed.stdout and "(done)" in resumed.stdout  # finished stages are skipped
    assert_no_duplicates(tmp_path / "killed")
    out = tmp_path / "killed" / "report"
    report = (out / "report.md").read_text()
    assert report == (whole_pipeline / "report" / "report.md").read_text().replace(
        str(whole_pipeline), str(tmp_path / "killed"))
    assert report.startswith("# retu report\n\nBase model: tiny:1m with model.seed 0.\n\n## Findings\n")
    assert "| 0 |" in report and "| 4 |" in report
    saved = json.loads((out / "report.json").read_text())
    assert [f["id"] for f in saved["findings"]][:2] == ["F1", "F2"]
    f1 = saved["findings"][0]
    assert f1["verdict"] in ("holds", "fails", "inconclusive") and f1["claim"].startswith("SFT-then-RL beats pure SFT")
    # Pure SFT's best counts every evaluated checkpoint, the branch points' P_sft included.
    rows = saved["per_seed"]["0"]["tables"][0]["rows"]
    sft_best = f1["numbers"]["pure SFT best checkpoint"]
    assert sft_best["value"] >= max(r["P_sft"] for r in rows if r["step"]) and sft_best["n"] == 16
    assert sft_best["lo"] <= sft_best["value"] <= sft_best["hi"]
    for name in ("phases.png", "fits.png", "decomposition.png", "decomposition.csv", "report.json"):
        assert (out / name).stat().st_size > 0


def test_compare_runs_every_paradigm_on_one_axis_and_resumes(tmp_path):
    cfg = write_yaml(tmp_path / "compare.yaml", {
        "run_dir": str(tmp_path / "c"), "sft_overrides": SFT, "rl_overrides": RL, "switch": 4,
        "methods": ["sft", "dapo_dc", "upt", "sft_then_rl"],  # LUFFY and SRFT run in test_rl.py
        "method_overrides": {"upt": ["rollout.upt_gate=1"]}})
    first = retu("compare", cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "c" / "report"
    table = json.loads((out / "compare.json").read_text())["table"]
    assert [r["method"] for r in table] == ["sft", "dapo_dc", "upt", "sft_then_rl"]
    curves = json.loads((out / "compare.json").read_text())["curves"]
    sft_flops = dict(zip(curves["sft"]["steps"], curves["sft"]["eflops"]))
    # SFT-then-RL starts at the SFT run's compute at its switch step, from that checkpoint's accuracy.
    assert curves["sft_then_rl"]["steps"][0] == 4
    assert curves["sft_then_rl"]["eflops"][0] == pytest.approx(sft_flops[4], rel=1e-6)
    assert curves["sft_then_rl"]["accuracy"][0] == pytest.approx(
        dict(zip(curves["sft"]["steps"], curves["sft"]["accuracy"]))[4])
    for method in ("dapo_dc", "upt"):  # RL from the base model: shared start at 0 FLOPs
        assert curves[method]["eflops"][0] == 0.0 and curves[method]["steps"] == [0, 1, 2, 3, 4]
        assert curves[method]["accuracy"][0] == curves["sft"]["accuracy"][0]
        assert all(b > a for a, b in zip(curves[method]["eflops"], curves[method]["eflops"][1:]))
    for row in table:
        assert row["ceiling"] is not None or row["note"].startswith("not fitted: "), row
    md = (out / "compare.md").read_text()
    assert "| pure SFT | 8 |" in md and "| SFT-then-RL | 4 |" in md and "![accuracy against compute]" in md
    assert (out / "compare.png").stat().st_size > 0 and (out / "compare.csv").read_text().count("\n") == 5
    again = retu("compare", cfg)
    assert again.returncode == 0 and again.stdout.count("(done)") == 4
    assert (out / "compare.md").read_text() == md
    assert_no_duplicates(tmp_path / "c")


def test_compare_with_two_seeds_reports_the_mean_over_seeds(tmp_path):
    cfg = write_yaml(tmp_path / "compare.yaml", {
        "run_dir": str(tmp_path / "c"), "sft_overrides": SFT, "rl_overrides": RL, "methods": ["sft", "dapo_dc"],
        "seeds": [0, 1], "workers": 2, "vary_base_model": True})
    done = retu("compare", cfg)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[compare] seed 1: pure SFT: " in done.stdout
    runs = {s: {m: read_records(tmp_path / "c" / f"seed-{s}" / m / "metrics.jsonl") for m in ("sft", "dapo_dc")}
            for s in (0, 1)}
    for s in (0, 1):  # each seed its own splits, sampling and (vary_base_model) base model
        for m in ("sft", "dapo_dc"):
            config = next(r for r in runs[s][m] if r["kind"] == "run_start")["config"]
            assert (config["seed"], config["data"]["seed"], config["model"]["seed"]) == (s, s, s)
    saved = json.loads((tmp_path / "c" / "report" / "compare.json").read_text())
    assert [r["seeds"] for r in saved["table"]] == [2, 2]
    accuracy = {s: [r["metrics"]["eval/overall"] for r in runs[s]["sft"] if r["kind"] == "eval"
                    and "eval/overall" in r["metrics"]] for s in (0, 1)}
    assert saved["curves"]["sft"]["accuracy"] == pytest.approx([(a + b) / 2 for a, b in zip(accuracy[0], accuracy[1])])
    md = (tmp_path / "c" / "report" / "compare.md").read_text()
    assert "means over 2 seeds" in md
    assert ("Base models: one per seed (seed 0: tiny:1m with model.seed 0; seed 1: tiny:1m with model.seed 1), so "
            "the replications also sample the base model.") in md.splitlines()


def test_compare_bad_config_is_one_line(tmp_path):
    bad = retu("compare", write_yaml(tmp_path / "bad.yaml", {"methods": ["sft", "ppo"]}))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "retu: error: compare: unknown method 'ppo'; valid: sft, grpo, dapo_d, dapo_dc, luffy, srft, upt, sft_then_rl"]
    # The same kind of error in this process (the command line's one line and exit code 2 are above).
    bad = CliRunner().invoke(cli_app(), ["compare", f"run_dir={tmp_path / 'x'}", "rl_overrides=[optim.lrr=1]"])
    assert isinstance(bad.exception, RetuInputError) and "unknown key 'optim.lrr'" in str(bad.exception)
    assert not (tmp_path / "x").exists()
