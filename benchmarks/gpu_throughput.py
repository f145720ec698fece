"""Throughput and model-FLOPs utilisation of retu runs, from their metrics.jsonl alone.

For each run directory: training tokens per second and FLOPs per second between its first and last
train records (wall clock of the records, so generation, evaluation and checkpoints in between
count, as they do for a user), and MFU = achieved FLOPs/s / the device's dense bf16 peak. FLOPs
are retu.flops' App. C counts (generation forwards + 3 forwards per trained token), the same that
sit on every record's compute axis.

    python benchmarks/gpu_throughput.py runs/gpu-smoke/sft runs/gpu-smoke/rl [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retu.metrics import read_records

# Dense bf16 tensor-core peaks (TFLOPs/s, no sparsity), by a substring of torch's device name.
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 70.0}


def device_peak() -> tuple[str, float | None]:
    """(device name, dense bf16 peak in TFLOPs/s or None) of CUDA device 0, or ("cpu", None)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def run_throughput(run_dir: Path) -> dict:
    """Tokens/s and FLOPs/s between the first and last train records of one run."""
    train = [r for r in read_records(run_dir / "metrics.jsonl") if r.get("kind") == "train"]
    if len(train) < 2:
        raise SystemExit(f"{run_dir}: needs at least two train records, found {len(train)}")
    first, last = train[0], train[-1]
    seconds = last["t"] - first["t"]
    if seconds <= 0:
        raise SystemExit(f"{run_dir}: the first and last train records carry the same time")
    return {"run": str(run_dir), "steps": last["step"] - first["step"], "seconds": seconds,
            "tokens_per_s": (last["tokens"] - first["tokens"]) / seconds,
            "flops_per_s": (last["flops"] - first["flops"]) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--peak-tflops", type=float, default=None, help="Override the device's peak.")
    args = parser.parse_args()
    name, peak = device_peak()
    peak = args.peak_tflops or peak
    print(f"device: {name}; dense bf16 peak: {peak if peak else 'unknown'} TFLOPs/s")
    print(f"{'run':40} {'steps':>6} {'seconds':>8} {'tokens/s':>10} {'TFLOPs/s':>9} {'MFU':>7}")
    for run in args.runs:
        r = run_throughput(run)
        mfu = f"{100 * r['flops_per_s'] / (peak * 1e12):.2f}%" if peak else "-"
        print(f"{r['run']:40} {r['steps']:6d} {r['seconds']:8.1f} {r['tokens_per_s']:10.0f} "
              f"{r['flops_per_s'] / 1e12:9.3f} {mfu:>7}")


if __name__ == "__main__":
    main()
