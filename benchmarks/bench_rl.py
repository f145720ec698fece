"""RL step time: retu's `RetuGRPOTrainer` against a bare TRL GRPOTrainer doing the same work, in one process.

Both train the same tiny model (random init, seed 0) on the same prompts with the same GRPOConfig
(`retu.engine.rl.build_grpo_config`): 8 prompts x G 8 per rollout, 2 optimizer steps per rollout
(TRL's `num_iterations`, so both recompute log pi_old), 32-token completions (a random model almost
always uses all of them, so both generate the same number of tokens). retu runs the `grpo` preset
(no dynamic sampling, so no extra generation rounds); the bare trainer runs TRL's own `grpo` loss
with the same math-verify reward function. Each optimizer step is timed by a callback (generation,
rewards, old log-probs, forward/backward and the optimizer step); the first rollout (2 steps) is
warm-up and dropped. The two sides alternate `--repeats` times; the best median of each is reported.

    flock /tmp/retu-cpu.lock .venv/bin/python benchmarks/bench_rl.py --steps 12
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
import transformers
from transformers import PrinterCallback, TrainerCallback
from trl import GRPOTrainer

from retu.algos.registry import build_algorithm
from retu.config import load_config
from retu.engine.datasets import load_problem_sets
from retu.engine.models import load_model
from retu.engine.rl import build_grpo_config, prompt_dataset
from retu.engine.compute import ComputeLedger
from retu.engine.rl_step import math_verify_reward, plan_step
from retu.engine.rl_trainer import RetuGRPOTrainer
from retu.engine.run import seed_everything
from retu.flops import load_shape

WARMUP_STEPS = 2


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self):
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)


def bench_config(steps: int, run_dir: Path):
    """GRPO on the embedded task from a random tiny model; nothing saved, no evaluation."""
    return load_config(overrides=[
        "kind=rl", "model.name_or_path=tiny:1m", "loss.algo=grpo", f"optim.max_steps={steps}", "optim.batch_size=8",
        "rollout.group_size=8", "rollout.updates_per_batch=2", "data.max_response_len=32",
        "data.arith_n_train=500", "data.arith_n_val=0", "data.arith_n_eval=0", "eval.every=0",
        f"log.log_every={steps}", "log.save_every=0", f"log.run_dir={run_dir}"])


def build(cfg, bare: bool) -> tuple[object, StepTimer]:
    """A trainer (bare TRL or retu) on the same model, prompts and GRPOConfig, with a step timer."""
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model.name_or_path, dtype=torch.float32, seed=cfg.model.seed)
    rows = load_problem_sets(cfg.data, require_solution=False).train
    args = build_grpo_config(cfg)  # save_strategy "no": log.save_every and eval.every are 0
    args.loss_type = "grpo"  # the bare trainer's own seq-mean-token-mean loss (retu ignores the field)
    timer = StepTimer()
    common = dict(model=model, args=args, train_dataset=prompt_dataset(rows), processing_class=tokenizer,
                  callbacks=[timer])
    if bare:
        trainer = GRPOTrainer(reward_funcs=[math_verify_reward], **common)
    else:
        algorithm = build_algorithm(cfg.loss.algo)
        plan = plan_step(algorithm.sampling, cfg.rollout, cfg.optim.batch_size, cfg.seed)
        trainer = RetuGRPOTrainer(algorithm=algorithm, plan=plan, shape=load_shape(model.config),
                                  ledger=ComputeLedger(), **common)
    trainer.remove_callback(PrinterCallback)
    return trainer, timer


def run(cfg, bare: bool) -> tuple[float, float]:
    """Median seconds per optimizer step after warm-up, and the mean completion length."""
    trainer, timer = build(cfg, bare)
    trainer.train()
    lengths = [v for e in trainer.state.log_history for k, v in e.items()
               if k in ("completions/mean_length", "completion/len_mean")]
    return statistics.median(timer.times[WARMUP_STEPS:]), sum(lengths) / max(len(lengths), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (2 per rollout)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side")
    opts = parser.parse_args()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    root = Path(tempfile.mkdtemp(prefix="bench-rl-"))
    names = {True: "bare TRL GRPOTrainer", False: "retu RetuGRPOTrainer"}
    best: dict[bool, tuple[float, float]] = {True: (float("inf"), 0.0), False: (float("inf"), 0.0)}
    try:
        for i in range(opts.repeats):
            for bare in (True, False):
                seconds, length = run(bench_config(opts.steps, root / f"{int(bare)}-{i}"), bare)
                best[bare] = min(best[bare], (seconds, length))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'trainer':<24} {'s/step (median)':>16} {'completion len':>15}")
    for bare in (True, False):
        print(f"{names[bare]:<24} {best[bare][0]:>16.3f} {best[bare][1]:>15.1f}")
    print(f"ratio retu / bare: {best[False][0] / best[True][0]:.3f} "
          f"(8 prompts x G 8, 32-token completions, {opts.steps} steps, best of {opts.repeats})")


if __name__ == "__main__":
    main()
