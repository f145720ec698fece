"""SFT recipe: TRL's SFTTrainer plus retu's callbacks (validation loss, FLOPs, sub-phases, checkpoints).

`run_sft(cfg)` reads top to bottom:
  1. check every input before anything is written: the config's SFT settings, the train and
     validation rows (an expert `solution` on each), the model path, the batch split;
  2. start or resume the run directory (config.yaml, metrics.jsonl rewound to the last checkpoint);
  3. build the SFTTrainer on conversational rows with the assistant-only loss, so the loss covers
     exactly the response tokens and the end-of-turn token (spec/ALGORITHMS.md section 2);
  4. train with the callbacks: ComputeCounter (cumulative real tokens and FLOPs), SftRecorder
     (train / eval / phase records, validation loss every sft.val_every steps, optional stop once
     it saturates), CheckpointCallback (checkpoints/step-N, complete or absent);
  5. write run_end with the minimum validation loss and the recommended switch to RL.
A kill at any moment loses at most the steps since the last checkpoint; rerunning the same command
resumes there and writes every record exactly once. A run already done is not trained again.

Differs from the paper (RETU's verl SFT, ALGORITHMS.md section 2):
  1. The loss is the token mean over the whole accumulated batch (TRL with `num_items_in_batch`);
     verl averages micro-batch token means.
  2. `max_length` = data.max_prompt_len + data.max_response_len, right truncation; TRL drops an
     example with no response token left (verl would keep it with zero loss).
  3. The prompt is retu's chat format (problem plus the boxed-answer instruction, no system turn).
  4. model.dtype bfloat16 / float16 means mixed precision on GPU with float32 master weights (as
     verl's FSDP); on CPU training is float32. Activation checkpointing is on only on GPU, unless
     optim.gradient_checkpointing says otherwise.

Launch:
    retu sft configs/tiny/sft.yaml
    retu sft configs/tiny/sft.yaml optim.max_steps=200 --run-dir runs/sft-short
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import PrinterCallback, ProgressCallback
from trl import SFTConfig, SFTTrainer

from retu.config import RunCfg
from retu.engine.callbacks import ComputeCounter, Evaluator, RichProgress, SftRecorder
from retu.engine.checkpoints import CheckpointCallback, staging_dir
from retu.engine.datasets import ProblemSets, has_generation_markers, load_problem_sets, sft_dataset
from retu.engine.models import load_model, lora_config
from retu.engine.profiling import step_profilers
from retu.engine.run import (
    RunContext,
    check_run_dir,
    end_run,
    is_main_process,
    optim_args,
    seed_everything,
    speed_args,
    start_run,
    train_or_record,
    world_size,
)
from retu.errors import RetuInputError
from retu.metrics import read_series
from retu.phases import detect_phases

# ---------------------------------------------------------------------------------------------------
# Inputs and trainer


def check_sft_inputs(cfg: RunCfg) -> ProblemSets:
    """Check what the config's own rules (`retu.config.check_sft`) cannot see (the command, the processes,
    the run directory, this machine) and read the rows; raise RetuInputError on the first problem."""
    if cfg.kind != "sft":
        raise RetuInputError(f"kind is '{cfg.kind}'; retu sft needs kind: sft")
    world = world_size()
    if cfg.optim.batch_size % (cfg.optim.grad_accum * world):
        raise RetuInputError(f"optim.batch_size ({cfg.optim.batch_size}) must be divisible by optim.grad_accum x "
                             f"processes ({cfg.optim.grad_accum} x {world})")
    check_run_dir(Path(cfg.log.run_dir), cfg)  # a run of another config there: refused before the model loads
    speed_args(cfg, cuda=torch.cuda.is_available())  # the throughput switches can apply on this machine
    return load_problem_sets(cfg.data, require_solution=True)  # data.val gives rows: retu.config.check_sft


def sft_args(cfg: RunCfg, run_dir, *, assistant_only: bool = True) -> SFTConfig:
    """The SFTTrainer configuration of a run (checkpoints staged under the run directory)."""
    o, gpu = cfg.optim, torch.cuda.is_available()
    micro_batch = o.batch_size // (o.grad_accum * world_size())
    return SFTConfig(
        output_dir=str(staging_dir(run_dir)), seed=cfg.seed, data_seed=cfg.seed,
        per_device_train_batch_size=micro_batch, **optim_args(o),
        bf16=gpu and cfg.model.dtype == "bfloat16", fp16=gpu and cfg.model.dtype == "float16",
        **speed_args(cfg, cuda=gpu), dataloader_pin_memory=gpu, use_cpu=not gpu,  # CPU processes: gloo
        ddp_find_unused_parameters=False,
        # Loss on the assistant turn only (the response and its end-of-turn token).
        assistant_only_loss=assistant_only, max_length=cfg.data.max_prompt_len + cfg.data.max_response_len,
        packing=False, padding_free=False,
        # SftRecorder decides what else is logged and saved; these are the regular cadences.
        logging_steps=cfg.log.log_every, logging_nan_inf_filter=False, save_strategy="steps",
        save_steps=cfg.log.save_every or cfg.sft.val_every, eval_strategy="no",
        # The JsonlLogger mirrors every record (log.report_to); HF must not report a second copy.
        report_to="none", disable_tqdm=True, log_level="warning",
    )


def _val_batches(trainer: SFTTrainer) -> list[dict]:
    """The validation set as TRL prepared it (tokenized, labels masked, truncated), collated once."""
    keep = [c for c in ("input_ids", "labels", "completion_mask", "assistant_masks") if c in trainer.eval_dataset.column_names]
    rows = trainer.eval_dataset.select_columns(keep)
    size = trainer.args.per_device_train_batch_size
    return [trainer.data_collator([rows[j] for j in range(i, min(i + size, len(rows)))])
            for i in range(0, len(rows), size)]


def build_trainer(cfg: RunCfg, ctx: RunContext, model, tokenizer, sets: ProblemSets,
                  *, progress: bool) -> tuple[SFTTrainer, ComputeCounter]:
    """SFTTrainer with retu's callbacks attached (counter hook, recorder, checkpoints, progress bar)."""
    args = sft_args(cfg, ctx.run_dir, assistant_only=has_generation_markers(tokenizer))
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=sft_dataset(sets.train, tokenizer),
                         eval_dataset=sft_dataset(sets.val, tokenizer), peft_config=lora_config(cfg.model))
    if cfg.sft.padding_free:
        # Only the collator changes: TRL's padding_free=True refuses max_length without packing (its check
        # predates truncating at preparation, SFTTrainer.__init__), and the prepared rows are truncated already.
        trainer.data_collator = dataclasses.replace(trainer.data_collator, padding_free=True)
    for default in (PrinterCallback, ProgressCallback):  # retu prints its own records and bar
        trainer.remove_callback(default)
    # The hook goes on what the Trainer calls (a PEFT wrapper, with LoRA, calls the inner forward directly).
    counter = ComputeCounter(trainer.model, tokens=ctx.resume_state.get("tokens", 0), flops=ctx.resume_state.get("flops", 0.0))
    bar = RichProgress(f"sft {ctx.run_dir.name}") if progress else None
    recorder = SftRecorder(cfg, ctx.logger, counter, Evaluator(_val_batches(trainer), sets.eval, tokenizer),
                           resume_step=ctx.resume_step if ctx.resume_from else None,
                           notify=bar.note if bar else None, write=is_main_process())
    trainer.add_callback(recorder)
    trainer.add_callback(CheckpointCallback(ctx.run_dir, recorder.checkpoint_state, keep=cfg.log.keep_checkpoints))
    if bar is not None:
        trainer.add_callback(bar)
    for profiler in step_profilers(cfg, ctx):
        trainer.add_callback(profiler)
    return trainer, counter


# ---------------------------------------------------------------------------------------------------
# The run


def sft_summary(ctx: RunContext) -> dict:
    """Final and minimum validation loss and the recommended switch step, from metrics.jsonl."""
    series = read_series(ctx.logger.path, "loss/val")
    phases = detect_phases(series.step, series.value, delta_stable=ctx.cfg.sft.delta_stable,
                           delta_severe=ctx.cfg.sft.delta_severe, source=str(ctx.run_dir))
    return {"final_val_loss": float(series.value[-1]), "val_loss_min": phases.L_min, "step_min": phases.step_min,
            "recommended_step": phases.recommended_step, "saturation_confirmed": phases.saturation_confirmed}


def run_sft(cfg: RunCfg, *, progress: bool = True) -> RunContext:
    """Run (or resume) SFT as configured; return the run's context once run_end is written.

    Raises:
        RetuInputError: bad rows, config values or model path, found before anything is written.
        TrainingDiverged: a non-finite loss or gradient norm (run_end says failed).
    """
    sets = check_sft_inputs(cfg)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg.model.name_or_path, dtype=torch.float32, seed=cfg.model.seed)
    model.set_attn_implementation(cfg.model.attn_implementation)
    ctx = start_run(cfg)
    if ctx.resume_state.get("done"):  # finished earlier (max_steps or saturation): nothing to train
        end_run(ctx, "ok", step=ctx.resume_step, tokens=ctx.resume_state["tokens"], flops=ctx.resume_state["flops"],
                **sft_summary(ctx))
        return ctx
    trainer, counter = build_trainer(cfg, ctx, model, tokenizer, sets, progress=progress)
    try:
        step = train_or_record(trainer, ctx, lambda: _totals(counter))
    finally:
        counter.remove()
    end_run(ctx, "ok", step=step, **_totals(counter), **sft_summary(ctx))
    return ctx


def _totals(counter: ComputeCounter) -> dict:
    tokens, flops = counter.totals()
    return {"tokens": tokens, "flops": flops}
