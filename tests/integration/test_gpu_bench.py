"""benchmarks/gpu_bench.py on CPU (--smoke): every case runs through retu and bare TRL, and the table and
gpu_bench.json hold what the runs measured."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "gpu_bench.py"
pytestmark = pytest.mark.integration


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_smoke_runs_every_case_and_writes_the_table(tmp_path):
    # liger needs CUDA: that case fails on this machine, says why in its row, and the others still run
    done = _bench("--smoke", "--out", str(tmp_path), "--sft-variants", "base,padding_free,liger", "--peak-tflops", "2")
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == "gpu_bench: 1 case(s) failed: sft qwen-tiny liger"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: cpu; dense bf16 peak: 2.0 TFLOP/s")
    assert lines[1].split() == ["case", "steps", "s/step", "tokens/s", "TFLOP/s", "MFU", "retu/bare"]
    saved = json.loads((tmp_path / "gpu_bench.json").read_text())
    rows = saved["rows"]
    # the order that measures issue 12's targets soonest; qwen-tiny has no MFU target, so its SFT comes last
    cases = ["rollout hf", "rollout paged", "rl dapo_dc (retu only)", "rl grpo", "sft qwen-tiny base",
             "sft qwen-tiny padding_free", "sft qwen-tiny liger"]
    assert [r["case"] for r in rows] == cases and saved["not_run"] == []
    assert [line[:34].strip() for line in lines[2:9]] == cases  # each row printed as it finished
    assert rows[-1] == {"case": "sft qwen-tiny liger", "error": "RetuInputError: optim.liger_kernel: liger_kernel "
                        "kernels need a CUDA GPU; set optim.liger_kernel=false"}
    assert lines[8].endswith("failed: RetuInputError: optim.liger_kernel: liger_kernel kernels need a CUDA GPU; "
                             "set optim.liger_kernel=false")
    for r in rows[:-1]:
        assert r["s_per_step"] > 0 and r["tokens_per_s"] > 0
    rollouts, rl, sft = rows[:2], rows[2:4], rows[4:6]
    # SFT: 4 steps, warm-up 1 -> a window of steps 2-3; only the first variant also runs through bare TRL,
    # which trained the very same tokens
    for r in sft:
        assert r["steps"] == 2 and r["model"] == "qwen-tiny" and r["mfu"] == pytest.approx(r["tflops"] / 2)
    assert sft[0]["tokens_agree"] is True and sft[0]["ratio"] > 0
    assert sft[1]["ratio"] is None and "tokens_agree" not in sft[1]
    # rollouts: 4 prompts x 2 samples of at most 16 new tokens; no FLOPs or ratio
    for r in rollouts:
        assert 0 < r["tokens"] <= 4 * 2 * 16 and r["sequences"] == 8 and r["mfu"] is None and r["ratio"] is None
    assert rl[0]["ratio"] is None and rl[1]["ratio"] > 0 and all(r["steps"] == 1 for r in rl)
    # what bounds a row: SFT's last step (4) traced through log.profile_step, each rollout's extra 4-token call
    for r in rollouts + sft:
        p = r["profile"]
        assert p["device"] == "cpu" and p["busy_s"] > 0 and 1 <= len(p["top"]) <= 12, p
        assert p["top"][0]["s"] == max(e["s"] for e in p["top"])
    assert [r["profile"]["step"] for r in sft] == [4, 4] and all(r["profile"]["new_tokens"] == 4 for r in rollouts)
    assert not any("profile" in r for r in rl)
    listed = lines.index("profiles (retu.engine.profiling; device busy share of the traced span, largest entries):")
    assert [line[:36].strip() for line in lines[listed + 1:listed + 5]] == [r["case"] for r in rollouts + sft]
    assert lines[listed + 5].startswith("targets (issue 12), ")
    # the targets, judged on these rows: no Qwen2.5 shape ran, the rest is measured
    verdicts = {t["target"]: (t["value"], t["verdict"]) for t in saved["targets"]}
    speedup = rollouts[1]["tokens_per_s"] / rollouts[0]["tokens_per_s"]
    assert verdicts["SFT MFU qwen2.5-1.5b >= 35%"] == (None, "not measured")
    assert verdicts["paged / generate tokens/s >= 5"] == (pytest.approx(speedup), "met" if speedup >= 5 else "missed")
    assert verdicts["DAPO_dc s/step <= 30"] == (rl[0]["s_per_step"], "met")
    assert verdicts["RL retu / bare TRL <= 1.05"][0] == rl[1]["ratio"]
    assert lines[-7].startswith("targets (issue 12), ") and lines[-3].startswith("  DAPO_dc s/step <= 30")


def test_resume_keeps_earlier_rows_and_the_deadline_skips_the_rest(tmp_path):
    earlier = tmp_path / "earlier.json"
    kept = {"case": "rollout hf", "steps": 1, "s_per_step": 40.0, "tokens_per_s": 3000.0, "tflops": None,
            "mfu": None, "ratio": None}
    earlier.write_text(json.dumps({"device": "cpu", "rows": [kept, {"case": "rollout paged", "error": "OOM"}]}))
    done = _bench("--smoke", "--out", str(tmp_path / "out"), "--cases", "rollout,rl", "--resume", str(earlier),
                  "--deadline", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((tmp_path / "out" / "gpu_bench.json").read_text())
    # the failed row is dropped, so it runs again: here the deadline (0 s) has passed before any case starts
    assert saved["rows"] == [kept] and saved["not_run"] == ["rollout paged", "rl grpo"]
    assert "rollout hf" in done.stdout and "(earlier call)" in done.stdout
    assert "not run (--deadline 0 s): rollout paged, rl grpo" in done.stdout


@pytest.mark.parametrize(("content", "message"), [
    ('{"device": "NVIDIA H100 80GB HBM3", "rows": []}', "measured on NVIDIA H100 80GB HBM3, this is cpu"),
    ("[1, 2", "not a gpu_bench.json (JSONDecodeError"),
])
def test_a_resume_file_from_elsewhere_is_one_line(tmp_path, content, message):
    (tmp_path / "earlier.json").write_text(content)
    with pytest.raises(SystemExit) as stop:
        _module().main(["--smoke", "--out", str(tmp_path / "out"), "--resume", str(tmp_path / "earlier.json")])
    assert stop.value.code.startswith(f"gpu_bench: --resume {tmp_path / 'earlier.json'}: ")
    assert message in stop.value.code and "\n" not in stop.value.code
    assert not (tmp_path / "out").exists()


def test_the_gpu_plan_builds_valid_configs(tmp_path):
    """The GPU sizes cannot run here, but each of their cases' configs is built and checked as on the GPU
    (GSM8K-shaped files stand in for the carried ones), so a config rule cannot fail the lent machine."""
    bench = _module()
    rows = [{"id": f"g-{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1),
             "solution": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(80)]
    for name in ("gsm8k_test.jsonl", "gsm8k_train.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    setup, root = bench.Setup(), tmp_path / "root"
    root.mkdir()
    data = bench.write_data(setup, root, str(tmp_path))
    planned = bench.plan(setup, ["sft", "rollout", "rl", "dapo_dc"], ["base", "liger+padding_free+no_ckpt"])
    assert [kind for _, kind, _ in planned] == ["rollout"] * 2 + ["sft"] * 4 + ["rl"] * 2 + ["sft"] * 2
    for case, kind, args in planned:
        if kind == "sft":
            model, batch, accum, variant, bare = args
            cfg = bench.sft_config(model, "m", batch, accum, variant, setup, data, root / "run")
            assert (cfg.optim.batch_size, cfg.optim.max_steps, cfg.model.dtype) == (64, 12, "bfloat16")
            assert cfg.log.profile_step == (12 if model.startswith("qwen2.5") else 0)  # the last step of a target's
            assert bare == (variant == "base") and cfg.sft.padding_free == (variant != "base")
            assert cfg.optim.gradient_checkpointing is (False if "no_ckpt" in variant else None)
        elif kind == "rl":
            cfg = bench.rl_config(args[0], "m", setup, data, root / "run")
            assert (cfg.loss.algo, cfg.rollout.engine, cfg.optim.max_steps) == (args[0], "paged", 4)
            assert cfg.optim.batch_size * cfg.rollout.group_size // cfg.optim.grad_accum == 32  # rows a micro-batch
            assert cfg.data.eval.endswith("eval.jsonl") and cfg.eval.max_new_tokens == 16


def test_targets_are_judged_by_their_bounds():
    targets = _module().targets
    rows = [{"case": "sft qwen2.5-1.5b base", "model": "qwen2.5-1.5b", "variant": "base", "mfu": 0.20, "ratio": 1.02},
            {"case": "sft qwen2.5-1.5b liger", "model": "qwen2.5-1.5b", "variant": "liger", "mfu": 0.36, "ratio": 1.08},
            {"case": "sft qwen2.5-0.5b base", "error": "OutOfMemoryError: CUDA out of memory"},
            {"case": "rollout hf", "tokens_per_s": 1000.0}, {"case": "rollout paged", "tokens_per_s": 5000.0},
            {"case": "rl dapo_dc (retu only)", "s_per_step": 31.0}, {"case": "rl grpo", "ratio": 1.05}]
    got = [(t["target"], t["value"], t["where"], t["verdict"]) for t in targets(rows)]
    assert got == [("SFT MFU qwen2.5-1.5b >= 35%", 0.36, "liger", "met"),
                   ("SFT MFU qwen2.5-0.5b >= 25%", None, None, "not measured"),  # its only row failed
                   ("paged / generate tokens/s >= 5", 5.0, "", "met"),
                   ("DAPO_dc s/step <= 30", 31.0, "", "missed"),
                   ("SFT retu / bare TRL <= 1.05", 1.08, "qwen2.5-1.5b liger", "missed"),  # the worst row
                   ("RL retu / bare TRL <= 1.05", 1.05, "", "met")]


def test_an_unknown_variant_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _module().main(["--smoke", "--out", str(tmp_path / "out"), "--sft-variants", "base+turbo"])
    assert stop.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "unknown case or variant: turbo")
    assert not (tmp_path / "out").exists()


def _module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_bench

    return gpu_bench


def test_steady_window_drops_warmup_and_the_last_step():
    steady = _module().steady
    assert steady([1.0, 2.0, 4.0, 7.0, 20.0], warmup=1) == 6.0  # end of step 1 -> end of step 4
    assert steady([1.0, 2.0, 4.0, 7.0, 20.0], warmup=2) == 5.0
    with pytest.raises(SystemExit, match="need at least warmup \\+ 2 = 4 steps, got 3"):
        steady([1.0, 2.0, 3.0], warmup=2)


def test_a_row_says_why_its_profile_is_missing(tmp_path):
    from retu.metrics import JsonlLogger

    step_profile = _module().step_profile
    log = JsonlLogger(tmp_path / "metrics.jsonl", run_id="r")
    log.log("train", step=1, tokens=1, flops=1.0)
    assert step_profile(tmp_path) == {}  # log.profile_step off
    log.log("event", step=2, event="profile_failed", error="RuntimeError: CUPTI_ERROR_NOT_INITIALIZED")
    assert step_profile(tmp_path) == {"profile_error": "RuntimeError: CUPTI_ERROR_NOT_INITIALIZED"}
    row = {"case": "sft qwen2.5-1.5b base", **step_profile(tmp_path)}
    assert _module().format_profile(row) == f"  {row['case']:<34} profile failed: {row['profile_error']}"


def test_a_rollout_row_keeps_its_measurement_when_its_profile_fails(tmp_path, monkeypatch):
    import torch

    from retu.engine.models import load_model

    bench = _module()
    setup = bench.Setup.smoke()
    path = bench.model_dir(setup.rollout_model, load_model("tiny:1m")[1], torch.float32, tmp_path)

    def broken(self):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED\nmore")

    monkeypatch.setattr(bench.Capture, "start", broken)
    r = bench.rollout_case("hf", path, setup, bench.write_data(setup, tmp_path, None))
    assert r["profile_error"] == "RuntimeError: CUPTI_ERROR_NOT_INITIALIZED" and "profile" not in r
    assert 0 < r["tokens"] <= 4 * 2 * 16 and r["tokens_per_s"] > 0 and r["sequences"] == 8
