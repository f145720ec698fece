"""SFT throughput: retu's `run_sft` against a bare TRL SFTTrainer doing the same work, in one process.

Both train the same tiny model (random init, seed 0) on the same rows with the same SFTConfig
(`retu.engine.sft.sft_args`) for the same number of steps. retu adds its callbacks (exact token
and FLOP counting, records, a validation loss and a checkpoint at the first and last step); the
bare trainer has none and saves nothing. Each side is timed end to end, model load and dataset
preparation included, and the two alternate `--repeats` times (the best time of each is reported).
Real (non-pad) tokens come from retu's counter and, for the bare trainer, from TRL's own
`num_tokens`; they must agree.

    flock /tmp/retu-cpu.lock python benchmarks/bench_sft.py --steps 60
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import datasets
import torch
import transformers
from transformers import PrinterCallback
from trl import SFTTrainer

from retu.config import load_config
from retu.engine.datasets import load_problem_sets, sft_dataset
from retu.engine.models import load_model
from retu.engine.run import seed_everything
from retu.engine.sft import run_sft, sft_args
from retu.metrics import read_records


def bench_config(steps: int, run_dir: Path):
    """The embedded task at the default batch, validated (and checkpointed) only at the last step."""
    return load_config(overrides=["model.name_or_path=tiny:1m", f"optim.max_steps={steps}", f"sft.val_every={steps}",
                                  "data.val=arith", "data.arith_n_val=32", "data.arith_n_eval=0",
                                  "data.arith_n_train=2000", f"log.log_every={steps}", f"log.run_dir={run_dir}"])


def run_bare(cfg) -> tuple[float, int]:
    """Seconds and real tokens of a bare SFTTrainer run (no retu callback, no save)."""
    start = time.perf_counter()
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model.name_or_path, dtype=torch.float32, seed=cfg.model.seed)
    rows = load_problem_sets(cfg.data, require_solution=True).train
    args = dataclasses.replace(sft_args(cfg, cfg.log.run_dir), save_strategy="no")
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=sft_dataset(rows, tokenizer))
    trainer.remove_callback(PrinterCallback)  # as retu does: no per-log print
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = next(e["num_tokens"] for e in reversed(trainer.state.log_history) if "num_tokens" in e)
    return seconds, int(tokens)


def run_retu(cfg) -> tuple[float, int]:
    """Seconds and real tokens of `run_sft` (fresh run directory)."""
    start = time.perf_counter()
    ctx = run_sft(cfg, progress=False)
    seconds = time.perf_counter() - start
    return seconds, read_records(ctx.logger.path)[-1]["tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per run (batch 32)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side")
    opts = parser.parse_args()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    root = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    best = {"bare TRL SFTTrainer": (float("inf"), 0), "retu run_sft": (float("inf"), 0)}
    try:
        for i in range(opts.repeats):
            for name, fn in (("bare TRL SFTTrainer", run_bare), ("retu run_sft", run_retu)):
                seconds, tokens = fn(bench_config(opts.steps, root / f"{name.split()[0]}-{i}"))
                best[name] = min(best[name], (seconds, tokens))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    (bare_s, bare_tok), (retu_s, retu_tok) = best.values()
    print(f"{'run':<22}{'steps':>7}{'tokens':>10}{'seconds':>10}{'tokens/s':>10}")
    for name, (seconds, tokens) in best.items():
        print(f"{name:<22}{opts.steps:>7}{tokens:>10}{seconds:>10.2f}{tokens / seconds:>10.0f}")
    print(f"retu / bare tokens/s: {(retu_tok / retu_s) / (bare_tok / bare_s):.3f}"
          f"  (tokens agree: {retu_tok == bare_tok}; torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
