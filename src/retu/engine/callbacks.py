"""retu's Trainer callbacks: exact compute counters, metrics.jsonl records, validation, progress.

- `ComputeCounter` counts the real (non-pad) tokens and the training FLOPs (retu.flops per-sequence
  mode, 3 passes) of every training forward pass, through a forward pre-hook on the model: the
  count is exact whatever the Trainer prefetches, skips on resume or drops at an epoch's end.
- `SftRecorder` writes the SFT records: `train` every log.log_every steps, and at every validation
  step an `eval` record (`loss/val`, plus `eval/*` accuracy at evaluation steps) and a `phase`
  record (the live sub-phase of retu.phases). It forces a log and a save at those steps, so all
  records of a step are written before the step's checkpoint exists (the Trainer logs, then saves),
  stops on saturation when asked, and stops the run on a non-finite loss or gradient.
- `RichProgress` draws a progress bar.

Every record carries the cumulative `tokens` and `flops`; the counters are stored in each
checkpoint's retu_state.json and restored on resume, so they continue exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from retu.config import RunCfg
from retu.errors import RunStopped
from retu.eval import evaluate_distributed
from retu.flops import load_shape, training_flops
from retu.metrics import JsonlLogger
from retu.phases import is_saturated, online_phase


class TrainingDiverged(RunStopped):
    """A non-finite training loss or gradient norm; the message names the step."""


# ---------------------------------------------------------------------------------------------------
# Compute counting


class ComputeCounter:
    """Cumulative real tokens and training FLOPs of the forward passes that train `model`.

    Args:
        model: the model the Trainer trains (its config gives the FLOPs shape).
        tokens, flops: counts restored from a checkpoint (0 on a fresh start).
        passes: forward-equivalents per trained token (3: forward + backward).
    """

    def __init__(self, model: torch.nn.Module, *, tokens: int = 0, flops: float = 0.0, passes: float = 3.0):
        self.shape = load_shape(model.config)
        self.tokens, self.flops, self.passes = int(tokens), float(flops), passes
        self._restored = (self.tokens, self.flops)
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # Validation and generation run in eval mode without gradients; only training passes count.
        if not (module.training and torch.is_grad_enabled()):
            return
        mask = kwargs.get("attention_mask")
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        if mask is not None:
            lens = mask.sum(dim=-1).tolist()
        elif "cu_seq_lens_q" in kwargs:  # padding-free: one row of joined sequences, with their boundaries
            lens = kwargs["cu_seq_lens_q"].diff().tolist()
        else:
            lens = [ids.shape[-1]] * ids.shape[0]
        self.tokens += int(sum(lens))
        self.flops += training_flops(self.shape, lens, passes=self.passes)

    def totals(self) -> tuple[int, float]:
        """(tokens, flops) so far, summed over data-parallel processes."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.tokens, self.flops
        # Each process counts its own shard; the restored part was already global, so it is not summed twice.
        world = torch.distributed.get_world_size()
        local = torch.tensor([self.tokens, self.flops], dtype=torch.float64)
        torch.distributed.all_reduce(local)
        return int(local[0]) - (world - 1) * self._restored[0], float(local[1]) - (world - 1) * self._restored[1]

    def remove(self) -> None:
        """Detach the hook from the model."""
        self._handle.remove()


# ---------------------------------------------------------------------------------------------------
# Validation loss


@torch.no_grad()
def compute_val_loss(model: torch.nn.Module, batches: list[dict]) -> float:
    """Token-mean NLL (nats) over the response tokens of all validation batches.

    Args:
        model: a model patched by TRL's SFTTrainer (`fused_lm_head=True` returns per-token
            `log_probs` and `label_mask` without building the logits), the same forward the
            training loss uses.
        batches: batches of the SFT collator: `input_ids` and `labels` (-100 = no loss), with `attention_mask`,
            or padding-free (sft.padding_free) with `position_ids` and the sequence boundaries.
    """
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    try:
        for batch in batches:
            batch = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            out = model(**batch, fused_lm_head=True, use_cache=False)
            nll -= float(out.log_probs.double().sum())  # zero on positions without a label
            count += int(out.label_mask.sum())
    finally:
        model.train(was_training)
    return nll / count if count else math.nan


@dataclass
class Evaluator:
    """What the recorder evaluates: validation batches, and problems for accuracy (may be empty)."""

    val_batches: list[dict]
    eval_rows: list[dict]
    tokenizer: object


# ---------------------------------------------------------------------------------------------------
# Records


class SftRecorder(TrainerCallback):
    """Writes train / eval / phase records, forces logs and saves at validation steps, stops on saturation.

    Args:
        cfg: the run config (log, sft and eval sections are read).
        logger: the run's JsonlLogger (already rewound to the resume step).
        counter: the ComputeCounter of the trained model.
        evaluator: validation batches and evaluation problems.
        resume_step: the checkpoint step a resumed run continues from (None on a fresh start, which
            validates and evaluates the initial model at step 0).
        notify: optional callable(str) receiving a one-line status after each record (progress bar).
        write: whether this process writes records (only the main one of a distributed launch).
    """

    def __init__(self, cfg: RunCfg, logger: JsonlLogger, counter: ComputeCounter, evaluator: Evaluator, *,
                 resume_step: int | None, notify: Callable[[str], None] | None = None, write: bool = True):
        self.cfg, self.logger, self.counter, self.evaluator = cfg, logger, counter, evaluator
        self.fresh, self.notify, self.write = resume_step is None, notify, write
        self.save_every = cfg.log.save_every or cfg.sft.val_every
        # Every process rebuilds the same history (the file may not be rewound yet in the others).
        self.val_history = [] if self.fresh else [
            (r["step"], _float(r["metrics"]["loss/val"])) for r in logger.records()
            if r.get("kind") == "eval" and "loss/val" in (r.get("metrics") or {}) and r["step"] <= resume_step]
        self._window = (time.perf_counter(), counter.tokens)
        self._last_totals = (counter.tokens, counter.flops)

    def _log(self, kind: str, **fields) -> None:
        if self.write:
            self.logger.log(kind, **fields)

    # -- schedule --------------------------------------------------------------------------------

    def _is_val_step(self, state: TrainerState) -> bool:
        return state.global_step % self.cfg.sft.val_every == 0 or state.global_step >= state.max_steps

    def _is_eval_step(self, state: TrainerState) -> bool:
        every = self.cfg.eval.every
        return bool(self.evaluator.eval_rows) and (
            state.global_step >= state.max_steps or (every > 0 and state.global_step % every == 0))

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self.fresh:
            self._evaluate(kwargs["model"], 0, validate=True, accuracy=True, last=False)
        self._window = (time.perf_counter(), self.counter.tokens)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        step = state.global_step
        if self._is_val_step(state) or self._is_eval_step(state):
            control.should_log = True  # the step's records come before its checkpoint
        if step % self.save_every == 0 or step >= state.max_steps:
            control.should_save = True
            control.should_log = True
        return control

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._window = (time.perf_counter(), self.counter.tokens)  # saving is not training throughput

    # -- records ---------------------------------------------------------------------------------

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # the end-of-training summary has no per-step loss
            return control
        self._train_record(state, logs)
        validate, accuracy = self._is_val_step(state), self._is_eval_step(state)
        if (validate or accuracy) and self._evaluate(kwargs["model"], state.global_step, validate=validate,
                                                     accuracy=accuracy, last=state.global_step >= state.max_steps):
            tokens, flops = self.counter.totals()
            self._log("event", step=state.global_step, tokens=tokens, flops=flops, event="stop_on_saturation")
            control.should_training_stop = True
            control.should_save = True
        self._window = (time.perf_counter(), self.counter.tokens)
        return control

    def _train_record(self, state: TrainerState, logs: dict) -> None:
        tokens, flops = self._last_totals = self.counter.totals()
        start, start_tokens = self._window
        metrics = {"loss/sft": logs["loss"], "optim/lr": logs.get("learning_rate"),
                   "optim/grad_norm": logs.get("grad_norm"),
                   "policy/entropy": logs.get("entropy"), "policy/token_accuracy": logs.get("mean_token_accuracy"),
                   "perf/tokens_per_s": (tokens - start_tokens) / max(time.perf_counter() - start, 1e-9)}
        self._log("train", step=state.global_step, tokens=tokens, flops=flops, metrics=metrics)
        bad = [n for n in ("loss/sft", "optim/grad_norm") if metrics[n] is not None and not math.isfinite(metrics[n])]
        if bad:
            raise TrainingDiverged(f"non-finite {' and '.join(bad)} at step {state.global_step}; the run stopped, "
                                   "its last checkpoint is still good")
        if self.notify is not None:
            self.notify(f"loss {logs['loss']:.4f}")

    def _evaluate(self, model, step: int, *, validate: bool, accuracy: bool, last: bool) -> bool:
        """Write the eval (and phase) records of `step`; return True when training should stop here.

        A stop on saturation also measures accuracy, so the run's last model is always evaluated.
        """
        tokens, flops = self.counter.totals()
        metrics, phase = {}, None
        if validate:
            metrics["loss/val"] = compute_val_loss(model, self.evaluator.val_batches)
            self.val_history.append((step, metrics["loss/val"]))
            phase = self._phase()
        stop = phase is not None and phase["saturated"] and self.cfg.sft.stop_on_saturation and not last
        if (accuracy or stop) and self.evaluator.eval_rows:
            e = self.cfg.eval
            result = evaluate_distributed(model, self.evaluator.tokenizer, self.evaluator.eval_rows,
                                          max_new_tokens=e.max_new_tokens, temperature=e.temperature,
                                          samples=e.samples, batch_size=e.batch_size)
            metrics.update(result.metrics())
        self._log("eval", step=step, tokens=tokens, flops=flops, metrics=metrics)
        if phase is not None:
            self._log("phase", step=step, tokens=tokens, flops=flops, **phase)
        if self.notify is not None:
            self.notify(" ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in metrics.items()
                                 if k in ("loss/val", "eval/overall") and v is not None)
                        + (f" ({phase['phase']})" if phase else ""))
        return stop

    def _phase(self) -> dict | None:
        """The live sub-phase of the newest validation loss, or None before any finite loss."""
        sft = self.cfg.sft
        finite = [(v, s) for s, v in self.val_history if math.isfinite(v)]
        if not finite:
            return None
        losses = [v for _, v in self.val_history]
        best, step_min = min(finite)
        return {"phase": online_phase(losses, delta_stable=sft.delta_stable, delta_severe=sft.delta_severe),
                "saturated": is_saturated(losses, delta_stable=sft.delta_stable, patience=sft.patience),
                "step_min": step_min, "metrics": {"loss/val_min": best}}

    def checkpoint_state(self, state: TrainerState, control: TrainerControl) -> dict:
        """retu_state.json content of a save (the CheckpointCallback's state_fn, main process only).

        Every save step was logged just before, so the totals of that train record are current; they
        are reused because summing them across processes here would wait for the other processes.
        """
        tokens, flops = self._last_totals
        return {"tokens": tokens, "flops": flops, "done": bool(control.should_training_stop)}


def _float(value) -> float:
    return math.nan if value is None else float(value)


# ---------------------------------------------------------------------------------------------------
# Progress


class RichProgress(TrainerCallback):
    """A rich progress bar over optimizer steps, with the latest loss and validation numbers."""

    def __init__(self, description: str = "sft"):
        # On a narrow console (80 columns, or a log file) the bar gives way; the counts and numbers do not.
        self.progress = Progress(TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
                                 BarColumn(table_column=Column(ratio=1)),
                                 MofNCompleteColumn(table_column=Column(no_wrap=True)),
                                 TimeRemainingColumn(table_column=Column(no_wrap=True)),
                                 TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True)))
        self.task = self.progress.add_task(description, total=None, status="")
        self.fields = {"train": "", "val": ""}

    def note(self, text: str) -> None:
        """Show `text` (a train status starts with "loss", anything else is a validation status)."""
        self.fields["train" if text.startswith("loss") else "val"] = text
        self.progress.update(self.task, status="  ".join(t for t in self.fields.values() if t))

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.progress.start()
        self.progress.update(self.task, total=state.max_steps, completed=state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.progress.update(self.task, completed=state.global_step)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.progress.stop()
