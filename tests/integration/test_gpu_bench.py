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
    done = _bench("--smoke", "--out", str(tmp_path), "--sft-variants", "base,padding_free", "--peak-tflops", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: cpu; dense bf16 peak: 2.0 TFLOP/s")
    assert lines[1].split() == ["case", "steps", "s/step", "tokens/s", "TFLOP/s", "MFU", "retu/bare"]
    rows = json.loads((tmp_path / "gpu_bench.json").read_text())["rows"]
    cases = ["sft qwen-tiny base", "sft qwen-tiny padding_free", "rollout hf", "rollout paged", "rl grpo",
             "rl dapo_dc (retu only)"]
    assert [r["case"] for r in rows] == cases
    assert [line[:34].strip() for line in lines[2:8]] == cases  # each row printed as it finished
    for r in rows:
        assert r["s_per_step"] > 0 and r["tokens_per_s"] > 0
    sft, rollouts, rl = rows[:2], rows[2:4], rows[4:]
    # SFT: 4 steps, warm-up 1 -> a window of steps 2-3; the bare trainer trained the very same tokens
    for r in sft:
        assert r["steps"] == 2 and r["tokens_agree"] is True and r["ratio"] > 0
        assert r["mfu"] == pytest.approx(r["tflops"] / 2)
    # rollouts: 4 prompts x 2 samples of at most 16 new tokens; no FLOPs or ratio
    for r in rollouts:
        assert 0 < r["tokens"] <= 4 * 2 * 16 and r["sequences"] == 8 and r["mfu"] is None and r["ratio"] is None
    assert rl[0]["ratio"] > 0 and rl[1]["ratio"] is None and all(r["steps"] == 1 for r in rl)
    assert done.stdout.strip().splitlines()[-1].startswith("paged / generate tokens/s: ")


def test_an_unknown_variant_is_one_line(tmp_path):
    done = _bench("--smoke", "--out", str(tmp_path), "--sft-variants", "base+turbo")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith("unknown case or variant: turbo")
    assert not (tmp_path / "gpu_bench.json").exists()


def test_steady_window_drops_warmup_and_the_last_step():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_bench import steady

    assert steady([1.0, 2.0, 4.0, 7.0, 20.0], warmup=1) == 6.0  # end of step 1 -> end of step 4
    assert steady([1.0, 2.0, 4.0, 7.0, 20.0], warmup=2) == 5.0
    with pytest.raises(SystemExit, match="need at least warmup \\+ 2 = 4 steps, got 3"):
        steady([1.0, 2.0, 3.0], warmup=2)
