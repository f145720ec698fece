"""What `workers: 2` buys on this machine: a stage of the embedded default alone with every torch
thread, then two copies of it at once with an equal share each (`retu.stage_pool`'s split).

    python benchmarks/bench_workers.py [--sft-steps 100] [--rl-steps 10]

Prints each run's seconds and the work per second of two at once relative to one alone. SFT runs
the main job's SFT config; RL runs its DAPO_dc config from the base model (no checkpoint needed).
Each run is a fresh process (`python benchmarks/bench_workers.py --one ...`), as a pool worker is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def one(kind: str, steps: int, threads: int, run_dir: str) -> None:
    import torch

    from retu.engine.rl import run_rl
    from retu.engine.sft import run_sft
    from retu.stages import DEFAULT_RL, DEFAULT_SFT, stage_config

    torch.set_num_threads(threads)
    overrides = [f"log.run_dir={run_dir}", f"optim.max_steps={steps}", "eval.every=0"]
    if kind == "sft":
        run_sft(stage_config(None, DEFAULT_SFT, overrides), progress=False)
    else:
        run_rl(stage_config(None, DEFAULT_RL, [*overrides, "model.name_or_path=base:1m"]), progress=False)


def timed(kind: str, steps: int, threads: int, copies: int) -> list[float]:
    """Seconds of each of `copies` runs started together, each with `threads` torch threads."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "--one", kind, str(steps), str(threads), f"{tmp}/{i}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(copies)]
        seconds = []
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                sys.exit(f"bench_workers: a {kind} run failed:\n{err[-2000:]}")
            seconds.append(time.perf_counter() - start)
        return seconds


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--rl-steps", type=int, default=10)
    args = parser.parse_args()
    for name, value in (("--sft-steps", args.sft_steps), ("--rl-steps", args.rl_steps)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    threads = torch.get_num_threads()
    print(f"{threads} torch threads alone; two at once with {max(1, threads // 2)} each")
    for kind, steps in (("sft", args.sft_steps), ("rl", args.rl_steps)):
        alone = timed(kind, steps, threads, 1)[0]
        pair = timed(kind, steps, max(1, threads // 2), 2)
        print(f"{kind} {steps} steps: alone {alone:.1f} s; two at once {pair[0]:.1f} and {pair[1]:.1f} s; "
              f"work per second {2 * alone / max(pair):.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
