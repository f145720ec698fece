"""Run directories: start or resume a run, and write its run_start / run_end records.

`start_run` is the first thing every trainer (SFT, RL) does after validating its inputs:

1. the run directory gets `config.yaml` (the resolved config); a directory whose `config.yaml`
   differs is refused (RetuInputError naming the differing keys), an identical one is resumed;
2. leftovers of a killed save are removed and the newest complete checkpoint is found;
3. metrics.jsonl is rewound to that checkpoint's step (records of the lost work are dropped, so
   the resumed run writes each record exactly once; with no checkpoint, everything is dropped);
4. a `run_start` record carries the config, git sha, package versions, hardware and resume step.

Trainers resume with `trainer.train(resume_from_checkpoint=ctx.resume_from)` and restore their own
counters from `ctx.resume_state`. `log.report_to` mirrors every record to TensorBoard or W&B through
the logger (so HF's own `report_to` stays "none" and no number is reported twice).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import random
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from retu.config import OptimCfg, RunCfg, save_config, to_dict
from retu.config_loader import read_yaml
from retu.engine.checkpoints import clear_staging, latest_checkpoint, read_state, step_of
from retu.errors import RetuInputError
from retu.metrics import JsonlLogger

PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "retu")


@dataclass
class RunContext:
    """A started run: its config, directory, logger and where it resumes from.

    Attributes:
        resume_from: newest complete checkpoint, or None for a fresh start.
        resume_step: its step (0 for a fresh start).
        resume_state: its `retu_state.json` ({} for a fresh start): cumulative tokens, flops, done.
    """

    cfg: RunCfg
    run_dir: Path
    logger: JsonlLogger
    resume_from: Path | None
    resume_step: int
    resume_state: dict = field(default_factory=dict)


def is_main_process() -> bool:
    """False in the secondary processes of a distributed launch (torchrun and accelerate set RANK).

    Only the main process writes the run directory; the others train and read.
    """
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """Processes of a distributed launch (torchrun and accelerate set WORLD_SIZE), 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def require_one_process(command: str) -> None:
    """Refuse a distributed launch of a command that runs whole runs one after another.

    Raises:
        RetuInputError: WORLD_SIZE > 1.
    """
    if world_size() > 1:
        raise RetuInputError(f"{command} runs its stages in one process (launched with {world_size()}); launch "
                             "the stages themselves with `accelerate launch -m retu sft|rl CONFIG` (docs/scaling.md)")


def optim_args(o: OptimCfg) -> dict:
    """The HF TrainingArguments of an `OptimCfg`, shared by the SFT and RL recipes.

    A warm-up of `warmup_ratio` (a share of max_steps), then constant or cosine; a cosine with
    `min_lr_ratio` ends at that share of the peak (HF's cosine_with_min_lr). With `decay_steps` the
    cosine reaches the floor after that many steps past the warm-up and holds it (HF's
    warmup_stable_decay with no stable part).

    >>> optim_args(OptimCfg(schedule="cosine", min_lr_ratio=0.25))["lr_scheduler_kwargs"]
    {'min_lr_rate': 0.25}
    >>> optim_args(OptimCfg(schedule="cosine", min_lr_ratio=0.1, decay_steps=300))["lr_scheduler_kwargs"]
    {'num_stable_steps': 0, 'num_decay_steps': 300, 'min_lr_ratio': 0.1, 'decay_type': 'cosine'}
    """
    if o.decay_steps:
        # HF warns that num_stable_steps overrides max_steps; here that is the intent (hold the floor).
        warnings.filterwarnings("ignore", message="Both num_training_steps and num_stable_steps")
        cosine = ("warmup_stable_decay", {"num_stable_steps": 0, "num_decay_steps": o.decay_steps,
                                          "min_lr_ratio": o.min_lr_ratio, "decay_type": "cosine"})
    elif o.min_lr_ratio:
        cosine = ("cosine_with_min_lr", {"min_lr_rate": o.min_lr_ratio})
    else:
        cosine = ("cosine", {})
    kind, kwargs = {"constant": ("constant_with_warmup", {}), "cosine": cosine}[o.schedule]
    return {"learning_rate": o.lr, "lr_scheduler_type": kind, "lr_scheduler_kwargs": kwargs,
            "warmup_steps": o.warmup_ratio, "max_steps": o.max_steps, "gradient_accumulation_steps": o.grad_accum,
            "adam_beta1": o.beta1, "adam_beta2": o.beta2, "weight_decay": o.weight_decay, "max_grad_norm": o.grad_clip}


def speed_args(cfg: RunCfg, *, cuda: bool) -> dict:
    """The HF TrainingArguments of the throughput switches, shared by the SFT and RL recipes, once each
    is known to apply on this machine (`model.attn_implementation` is set on the model by the recipe).

    Raises:
        RetuInputError: flash_attention_2 or Liger kernels without CUDA or without their package.

    >>> speed_args(RunCfg(), cuda=False)
    {'activation_checkpointing': False, 'torch_compile': False, 'use_liger_kernel': False}
    """
    # setting -> (asked for, package it imports, how to install it, the value that works anywhere)
    kernels = {"model.attn_implementation": (cfg.model.attn_implementation == "flash_attention_2", "flash_attn",
                                             "pip install flash-attn", "sdpa"),
               "optim.liger_kernel": (cfg.optim.liger_kernel, "liger_kernel", "pip install -e '.[gpu]'", "false")}
    for key, (wanted, package, install, anywhere) in kernels.items():
        if wanted and not cuda:
            raise RetuInputError(f"{key}: {package} kernels need a CUDA GPU; set {key}={anywhere}")
        if wanted and importlib.util.find_spec(package) is None:
            raise RetuInputError(f"{key}: the {package} package is not installed; {install}, or set {key}={anywhere}")
    checkpointing = cfg.optim.gradient_checkpointing
    return {"activation_checkpointing": cuda and cfg.kind == "sft" if checkpointing is None else checkpointing,
            "torch_compile": cfg.optim.torch_compile, "use_liger_kernel": cfg.optim.liger_kernel}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------------
# Environment facts for run_start


def git_info(path: str | os.PathLike | None = None) -> dict | None:
    """{"sha", "dirty"} of the git checkout holding `path` (default: retu's source); None outside one."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(status.strip())}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None when not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware_info() -> dict:
    """Device name, GPU count, torch threads and CPU count of this process."""
    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "gpus": torch.cuda.device_count() if cuda else 0,
            "threads": torch.get_num_threads(), "cpus": os.cpu_count()}


# ---------------------------------------------------------------------------------------------------
# Metric mirrors (log.report_to)


def _no_mirrors(cfg: RunCfg, run_dir: Path) -> tuple:
    return ()


def _tensorboard_mirror(cfg: RunCfg, run_dir: Path) -> tuple:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def mirror(kind: str, step: int | None, metrics: dict) -> None:
        if step is None:
            return
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)
        writer.flush()

    return (mirror,)


def _wandb_mirror(cfg: RunCfg, run_dir: Path) -> tuple:
    try:
        import wandb
    except ImportError:
        raise RetuInputError("log.report_to=wandb needs the wandb package (pip install wandb)") from None
    run = wandb.init(project="retu", name=run_dir.name, id=run_dir.name, resume="allow", dir=str(run_dir),
                     config=to_dict(cfg))
    return (lambda kind, step, metrics: run.log(metrics, step=step) if step is not None else None,)


MIRRORS = {"none": _no_mirrors, "tensorboard": _tensorboard_mirror, "wandb": _wandb_mirror}  # retu.config.REPORT_TO


# ---------------------------------------------------------------------------------------------------
# Start and end


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_run_dir(run_dir: Path, cfg: RunCfg) -> bool:
    """True when `run_dir` holds a run of this exact config (resume), False when it is new.

    Raises:
        RetuInputError: the directory holds a run of another config, or metrics without a config.
    """
    path = run_dir / "config.yaml"
    if not path.exists():
        if (run_dir / "metrics.jsonl").exists():
            raise RetuInputError(f"{run_dir}: holds a metrics.jsonl but no config.yaml; not a retu run "
                                 "directory, pick another --run-dir")
        return False
    old = _flatten(read_yaml(path))
    new = _flatten(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))  # the same YAML round trip as the file
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diff:
        raise RetuInputError(f"{run_dir}: already holds a run with a different config ({'; '.join(diff[:5])}"
                             f"{'; ...' if len(diff) > 5 else ''}); use another run directory or the same config "
                             "to resume")
    return True


def start_run(cfg: RunCfg, *, curve: dict | None = None) -> RunContext:
    """Create or resume the run directory `cfg.log.run_dir` and write its run_start record.

    Args:
        cfg: the resolved config (written to config.yaml, compared with an existing one).
        curve: optional description of the curve this run adds to (e.g. the SFT checkpoint an RL
            branch starts from); stored in run_start.

    Returns:
        The RunContext; `resume_from` is None on a fresh start.

    Raises:
        RetuInputError: a run directory holding another config (or wandb asked for and not installed).
    """
    run_dir, main = Path(cfg.log.run_dir), is_main_process()
    if not check_run_dir(run_dir, cfg) and main:
        save_config(cfg, run_dir / "config.yaml")
    resume_from = latest_checkpoint(run_dir)
    resume_step = step_of(resume_from) if resume_from is not None else 0
    state = read_state(resume_from) if resume_from is not None else {}
    logger = JsonlLogger(run_dir / "metrics.jsonl", run_id=run_dir.name,
                         mirrors=MIRRORS[cfg.log.report_to](cfg, run_dir) if main else ())
    if not main:
        return RunContext(cfg, run_dir, logger, resume_from, resume_step, state)
    clear_staging(run_dir)
    # With no checkpoint nothing survives, step-0 records included: the run starts over.
    logger.rewind(resume_step if resume_from is not None else -1)
    logger.log("run_start", step=resume_step, tokens=state.get("tokens", 0), flops=state.get("flops", 0.0),
               config=to_dict(cfg), git=git_info(), versions=package_versions(), hardware=hardware_info(),
               resume_step=resume_step, resume_from=str(resume_from) if resume_from else None,
               **({"curve": curve} if curve is not None else {}))
    return RunContext(cfg, run_dir, logger, resume_from, resume_step, state)


RUN_END_STATUSES = ("ok", "pruned", "failed", "interrupted")


def end_run(ctx: RunContext, status: str, *, step: int | None = None, tokens: float | None = None,
            flops: float | None = None, **extra) -> None:
    """Write the run_end record: status "ok", "pruned" (stopped as hopeless, resumable), "failed" or
    "interrupted", plus any summary fields."""
    if status not in RUN_END_STATUSES:
        raise ValueError(f"run_end status must be one of {', '.join(RUN_END_STATUSES)}, got {status!r}")
    if is_main_process():
        ctx.logger.log("run_end", step=step, tokens=tokens, flops=flops, status=status, **extra)


def train_or_record(trainer, ctx: RunContext, totals: Callable[[], dict]) -> int:
    """Run (or resume) an HF Trainer; if it stops on an exception, write run_end "interrupted" (Ctrl-C)
    or "failed" (with the error) and re-raise. Return the step reached. SFT and RL recipes both train
    through it.

    Args:
        totals: The run's cumulative {"tokens", "flops"} at the moment of the failure.
    """
    try:
        trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    except KeyboardInterrupt:
        end_run(ctx, "interrupted", step=trainer.state.global_step, **totals())
        raise
    except BaseException as exc:
        end_run(ctx, "failed", step=trainer.state.global_step, error=f"{type(exc).__name__}: {exc}"[:500], **totals())
        raise
    return trainer.state.global_step
