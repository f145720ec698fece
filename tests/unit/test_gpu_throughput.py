"""benchmarks/gpu_throughput.py: tokens/s and FLOPs/s from train records (used by gpu_smoke.sh)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "benchmarks" / "gpu_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path) -> Path:
    records = [{"kind": "run_start", "step": 0, "t": 100.0}] + [
        {"kind": "train", "step": step, "t": t, "tokens": tokens, "flops": flops}
        for step, t, tokens, flops in [(1, 110.0, 1000, 2e12), (2, 112.0, 3000, 6e12), (5, 120.0, 9000, 1.8e13)]]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"v": 1, "run_id": "r", **r}) + "\n" for r in records))
    return tmp_path


def test_throughput_between_first_and_last_train_record(tmp_path):
    r = _module().run_throughput(_run(tmp_path))
    assert (r["steps"], r["seconds"], r["tokens_per_s"], r["flops_per_s"]) == (4, 10.0, 800.0, 1.6e12)


def test_cli_prints_mfu_against_the_given_peak(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), str(_run(tmp_path)),
                          "--peak-tflops", "100"], capture_output=True, text=True, check=True).stdout
    assert "peak: 100.0 TFLOPs/s" in out and out.strip().splitlines()[-1].split()[-1] == "1.60%"
