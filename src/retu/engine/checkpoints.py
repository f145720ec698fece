"""Checkpoints of a run directory: `checkpoints/step-N/`, complete or absent, never half-written.

A checkpoint is the HF Trainer's own full save (weights and tokenizer loadable by `from_pretrained`,
`optimizer.pt`, `scheduler.pt`, `rng_state.pth`, `trainer_state.json`, so `trainer.train(
resume_from_checkpoint=...)` continues exactly) plus retu's state, `retu_state.json` (cumulative
tokens and FLOPs, whether training was done). The Trainer writes into a staging directory
(`checkpoints/.staging/checkpoint-N`, the Trainer's `output_dir`); `finalize_checkpoint` then writes
`retu_state.json` last, flushes every file to disk and renames the directory to `checkpoints/step-N`.
A rename is atomic, so a kill at any moment leaves either the complete `step-N` or a leftover in
`.staging` that `latest_checkpoint` ignores and `clear_staging` removes.

Use with any HF Trainer subclass (SFTTrainer, GRPOTrainer): set `output_dir=staging_dir(run_dir)`,
`save_strategy="steps"`, and add `CheckpointCallback`, whose `on_save` finalises each save right after
the Trainer wrote it (the Trainer logs and evaluates a step before saving it, so every record of
step N is in metrics.jsonl before `step-N` exists).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from retu.errors import RetuInputError

MARKER = "retu_state.json"  # written last: its presence means the checkpoint is complete
STAGING = ".staging"
_STEP_DIR = re.compile(r"step-(\d+)")


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of `step` lives: `run_dir/checkpoints/step-N`."""
    return Path(run_dir) / "checkpoints" / f"step-{step}"


def staging_dir(run_dir: str | os.PathLike) -> Path:
    """The HF Trainer's `output_dir`: it writes `checkpoint-N` here before `finalize_checkpoint`."""
    return Path(run_dir) / "checkpoints" / STAGING


def step_of(path: str | os.PathLike) -> int:
    """Training step of a checkpoint directory named `step-N`.

    >>> step_of("runs/x/checkpoints/step-120")
    120
    """
    match = _STEP_DIR.fullmatch(Path(path).name)
    if match is None:
        raise RetuInputError(f"{path}: not a retu checkpoint directory (expected a name like step-120)")
    return int(match.group(1))


def recorded_eval(checkpoint: str | os.PathLike, config: dict) -> dict | None:
    """The evaluation the run that saved `checkpoint` logged at its step, when it evaluated the same
    problems the same way as `config` (`retu.config.EVAL_KEYS`); its eval/* metrics, else None.

    An RL branch from an SFT checkpoint starts with this evaluation instead of repeating it, so every
    problem is evaluated once per checkpoint.
    """
    from retu.config import EVAL_KEYS, config_value
    from retu.config_loader import read_yaml
    from retu.metrics import read_records

    path = Path(checkpoint)
    run = path.parent.parent
    if path.parent.name != "checkpoints" or not _STEP_DIR.fullmatch(path.name) or not (run / "config.yaml").exists():
        return None
    saved = read_yaml(run / "config.yaml")
    if any(config_value(saved, k) != config_value(config, k) for k in EVAL_KEYS):
        return None
    step = step_of(path)
    records = [r for r in read_records(run / "metrics.jsonl") if r.get("kind") == "eval" and r.get("step") == step
               and (r.get("metrics") or {}).get("eval/overall") is not None]
    if not records:
        return None
    return {k: v for k, v in records[-1]["metrics"].items() if k.startswith("eval/")}


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run (those holding `retu_state.json`), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if _STEP_DIR.fullmatch(p.name) and (p / MARKER).is_file()]
    return sorted(done, key=step_of)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint, or None when there is none."""
    done = list_checkpoints(run_dir)
    return done[-1] if done else None


def read_state(checkpoint: str | os.PathLike) -> dict:
    """retu's state saved with a checkpoint (`step`, `tokens`, `flops`, `done`, ...)."""
    path = Path(checkpoint) / MARKER
    if not path.is_file():
        raise RetuInputError(f"{checkpoint}: not a complete retu checkpoint (no {MARKER})")
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------
# Writing


def _fsync_tree(root: Path) -> None:
    # A rename only orders metadata; flush the file contents first so a power loss cannot leave a
    # complete-looking checkpoint with empty files (a plain kill loses nothing either way).
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _write_marker(directory: Path, state: dict) -> None:
    tmp = directory / f".{MARKER}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MARKER)


def finalize_checkpoint(source: str | os.PathLike, run_dir: str | os.PathLike, step: int, state: dict) -> Path:
    """Turn a directory the Trainer has completely written into the checkpoint `step-N`.

    Args:
        source: the HF Trainer's `checkpoint-N` directory (or any complete HF save).
        run_dir: the run directory.
        step: its training step.
        state: JSON-safe retu state to store (`step` is added).

    Returns:
        The final path `run_dir/checkpoints/step-N`. An existing `step-N` is replaced.
    """
    source, target = Path(source), checkpoint_dir(run_dir, step)
    # The Trainer pickles its TrainingArguments beside the weights; nothing reads them back (resume uses
    # the run's config.yaml), and a checkpoint should hold no pickle.
    (source / "training_args.bin").unlink(missing_ok=True)
    _write_marker(source, {**state, "step": step})
    _fsync_tree(source)
    if target.exists():  # the same step saved again (a rerun): swap, never merge
        old = staging_dir(run_dir) / f"replaced-{target.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(source, target)
        shutil.rmtree(old)
    else:
        os.rename(source, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return target


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (keep 0 = keep all); return the deleted."""
    if keep <= 0:
        return []
    old = list_checkpoints(run_dir)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


def clear_staging(run_dir: str | os.PathLike) -> None:
    """Remove what a killed save left in the staging directory (called when a run starts)."""
    shutil.rmtree(staging_dir(run_dir), ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Trainer hook


class CheckpointCallback(TrainerCallback):
    """Finalise every Trainer save into `checkpoints/step-N` and prune old ones.

    Args:
        run_dir: the run directory (the Trainer's `output_dir` must be `staging_dir(run_dir)`).
        state_fn: (TrainerState, TrainerControl) -> JSON-safe dict stored in `retu_state.json`,
            e.g. cumulative tokens and FLOPs; called at each save.
        keep: complete checkpoints kept (0 = all).
    """

    def __init__(self, run_dir: str | os.PathLike, state_fn: Callable[[TrainerState, TrainerControl], dict],
                 keep: int = 0):
        self.run_dir = Path(run_dir)
        self.state_fn = state_fn
        self.keep = keep
        self.saved: list[Path] = []

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not state.is_world_process_zero:
            return
        if Path(args.output_dir).resolve() != staging_dir(self.run_dir).resolve():
            raise ValueError(f"CheckpointCallback: the Trainer's output_dir must be {staging_dir(self.run_dir)}")
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.saved.append(finalize_checkpoint(source, self.run_dir, state.global_step,
                                              self.state_fn(state, control)))
        prune_checkpoints(self.run_dir, self.keep)
