"""RL recipe: GRPO, DAPO_d, DAPO_dc (and LUFFY, SRFT, UPT) from any checkpoint, compute-accounted.

One rollout step draws `optim.batch_size` prompts, samples G = `rollout.group_size` completions each,
rewards them with binary math-verify (hard timeout; a timeout scores 0 and is counted), computes
group advantages and updates the policy `rollout.updates_per_batch` times on that batch (TRL's
`num_iterations`, the GRPO paper's mu; with one update the ratio is 1 and no clip can act). What
differs per algorithm is data in `retu.algos.registry.ALGORITHMS`: the advantage, the per-token term
and aggregation (or a hybrid method), and the sampling switches read by `retu.engine.rl_step`: DAPO's
dynamic sampling (keep groups with 1..G-1 correct, more rounds of `rollout.gen_batch` prompts until
the batch is full, at most `rollout.max_gen_rounds`, then an error or a logged partial batch per
`rollout.on_exhausted`), LUFFY/SRFT's expert rows and UPT's gate. The methods with expert rows
train on `retu.data.expert.build_expert_set` of the training rows: trajectories over the response
limit are dropped and counted, those the verifier rejects are kept with a counted warning (an
`expert_data` event records both). `optim.skip_grad_norm` skips an update whose pre-clip gradient
norm is non-finite or above it (UPT's Qwen script: 80), counted in `optim/skipped`.

Records (metrics.jsonl, through `start_run`'s logger): a train record every `log.log_every` steps and
at every checkpoint, with cumulative `tokens` (prompt + completion of every trained row, per
optimizer pass) and `flops` (paper App. C, per-sequence lengths: 1 forward per generated sequence of
every generation round, kept or not, plus 3 forwards per trained sequence and optimizer pass);
an eval record (pass@1 per group and overall on the held-out set) at step 0 before any update (the
branch point P_start of the ceiling fit), every `eval.every` steps and at the end.

Deviations from the reference (verl) implementation:
1. Several optimizer steps per rollout batch are TRL's `num_iterations` passes over the whole batch
   (verl splits the batch into PPO mini-batches); both make the clip act.
2. DAPO's extra generation rounds draw prompts with a seeded pure function of (seed, step, round),
   without replacement inside a round, instead of advancing a dataloader.
3. Prompts longer than `data.max_prompt_len` tokens are dropped before training (verl's
   `filter_overlong_prompts`), not truncated.
4. FLOPs leave out the extra forward that recomputes log pi_old when a batch serves several updates
   (as the paper does; spec section 10, item 4).

Distributed (`accelerate launch -m retu rl ...`): `optim.batch_size` and `rollout.gen_batch` are
global and split over the processes (each must divide by their number); every process generates its
share of each round, the accumulator runs on the gathered groups (`rl_step`), the evaluations are
shared out too (`retu.eval.evaluate_distributed`), and only the main process writes the run directory.

Launch:
    retu rl configs/tiny/rl_dapo_dc.yaml model.name_or_path=runs/sft/checkpoints/step-1000
    retu rl configs/tiny/rl_grpo.yaml --algo grpo log.run_dir=runs/rl-grpo
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig

from retu.config import RunCfg, to_dict
from retu.data.chat import build_messages
from retu.data.expert import build_expert_set
from retu.engine.callbacks import RichProgress, TrainingDiverged
from retu.engine.ceiling_watch import CeilingWatch, past_points
from retu.engine.checkpoints import (
    CheckpointCallback,
    read_state,
    recorded_eval,
    staging_dir,
    step_of,
)
from retu.engine.compute import ComputeLedger
from retu.engine.datasets import load_problem_sets
from retu.engine.generators import paged_config, resolve_engine
from retu.engine.models import load_model, lora_config
from retu.engine.profiling import step_profilers
from retu.engine.rl_step import plan_step
from retu.engine.rl_trainer import RetuGRPOTrainer
from retu.engine.run import (
    RunContext,
    end_run,
    is_main_process,
    optim_args,
    seed_everything,
    speed_args,
    start_run,
    train_or_record,
    world_size,
)
from retu.errors import RetuInputError, warn
from retu.eval import evaluate_distributed
from retu.flops import EFLOP, load_shape
from retu.metrics import JsonlLogger
from retu.rewards import check_gold
from retu.scaling.prior import SiblingPrior

RECORD_GROUPS = ("loss", "policy", "reward", "completion", "perf", "optim")  # train-record groups the trainer fills
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class RLResult:
    """What `run_rl` returns: where the run lives, its last step and its last evaluation."""

    run_dir: Path
    step: int
    eval_metrics: dict[str, float]


def run_rl(cfg: RunCfg, *, progress: bool = True, rivals: dict[str, tuple[float, float]] | None = None,
           prior: SiblingPrior | None = None) -> RLResult:
    """Train with RL as `cfg` says, resuming from the run directory's latest complete checkpoint.

    Every evaluation after the first few carries the live ceiling (`retu.engine.ceiling_watch`).

    Args:
        cfg: The resolved config (`kind` "rl"; `loss.algo` names a preset of `retu.algos.registry`).
        progress: Show a progress bar (on the main process).
        rivals: Sibling branch name -> final (lo, hi) ceiling interval. When given, the run stops
            (run_end status "pruned", after a checkpoint) once its own interval lies wholly below
            the best rival's lower bound; rerun without rivals, it resumes to the end.
        prior: Finished sibling runs' curve shape for the live ceiling (`ceiling_watch.sibling_prior`).

    Returns:
        RLResult.

    Raises:
        RetuInputError: Bad input, found before the run directory is touched: a config key or value,
            a row without problem/answer, an answer math-verify cannot parse, a model path that is
            not a model, a batch TRL cannot split into groups.
    """
    # 1. Check every input before anything is written.
    algorithm = cfg.loss.algorithm()  # the config's own rules (retu.config.check_rl) already hold
    plan = plan_step(algorithm.sampling, cfg.rollout, cfg.optim.batch_size, cfg.seed)
    needs_expert = plan.n_expert > 0 or plan.upt_gate is not None
    sets = load_problem_sets(cfg.data, require_solution=needs_expert)
    check_answers(sets.train, cfg.data.train)
    check_answers(sets.eval, cfg.data.eval or cfg.data.train)
    model, tokenizer = load_model(cfg.model.name_or_path, dtype=DTYPES[cfg.model.dtype], seed=cfg.model.seed)
    model.set_attn_implementation(cfg.model.attn_implementation)
    train_rows, n_overlong = drop_overlong(sets.train, tokenizer, cfg.data.max_prompt_len)
    expert = None
    if needs_expert:
        train_rows, expert = build_expert_set(train_rows, tokenizer, cfg.data.max_response_len,
                                              keep_overlong=cfg.data.keep_overlong_expert, source=cfg.data.train)
        if expert.rejected or expert.overlong:
            warn(f"expert data {cfg.data.train}: {expert.summary()}")
    args = build_grpo_config(cfg, resolve_engine(cfg.rollout.engine, cuda=torch.cuda.is_available(),
                                                 vllm=importlib.util.find_spec("vllm") is not None,
                                                 n_expert=plan.n_expert))

    # 2. Start (or resume) the run directory; the step-0 evaluation is the branch point P_start.
    ctx = start_run(cfg, curve=describe_branch(cfg.model.name_or_path))
    if is_main_process():  # only the main process writes the run directory
        if n_overlong:
            ctx.logger.log("event", step=ctx.resume_step, event="prompts_dropped_overlong", count=n_overlong)
        if expert is not None:
            ctx.logger.log("event", step=ctx.resume_step, event="expert_data", **expert.to_dict())
    if ctx.resume_state.get("done"):
        return _finish(ctx, None, ctx.resume_step, {})
    seed_everything(cfg.seed)
    ledger = ComputeLedger(tokens=ctx.resume_state.get("tokens", 0.0), flops=ctx.resume_state.get("flops", 0.0))
    bar = RichProgress(f"rl {ctx.run_dir.name}") if progress and is_main_process() else None
    recorder = RLRecorder(cfg, ctx, ledger, sets.eval, tokenizer, CeilingWatch(dict(rivals or {}), prior),
                          notify=bar.note if bar else None)
    state_fn = checkpoint_state_fn(ledger, cfg.optim.max_steps)
    trainer = RetuGRPOTrainer(
        algorithm=algorithm, plan=plan, shape=load_shape(model.config), ledger=ledger,
        skip_grad_norm=cfg.optim.skip_grad_norm, model=model, peft_config=lora_config(cfg.model), args=args,
        train_dataset=prompt_dataset(train_rows), processing_class=tokenizer,
        callbacks=[recorder, CheckpointCallback(ctx.run_dir, state_fn, keep=cfg.log.keep_checkpoints),
                   *([bar] if bar else []), *step_profilers(cfg, ctx)])
    trainer.remove_callback(PrinterCallback)  # records go to metrics.jsonl; the bar shows progress
    if args.use_vllm or args.use_transformers_continuous_batching:  # evaluate with the rollouts' engine
        from retu.engine.generators import trainer_generate_fn

        recorder.generate_fn = trainer_generate_fn(trainer, cfg.seed)

    # 3. Train; a final checkpoint marks the run done.
    step = train_or_record(trainer, ctx, ledger.to_dict)  # a final checkpoint (RLRecorder) marks the run done
    return _finish(ctx, ledger, step, recorder.last_eval, status="pruned" if recorder.pruned else "ok")


def checkpoint_state_fn(ledger: ComputeLedger, max_steps: int):
    """The CheckpointCallback's state_fn: cumulative tokens and FLOPs, and whether training is done."""

    def state_fn(state, control) -> dict:
        return {**ledger.to_dict(), "done": state.global_step >= max_steps}

    return state_fn


def _finish(ctx: RunContext, ledger: ComputeLedger | None, step: int, eval_metrics: dict, *,
            status: str = "ok") -> RLResult:
    totals = ledger.to_dict() if ledger is not None else {k: ctx.resume_state.get(k) for k in ("tokens", "flops")}
    end_run(ctx, status, step=step, **totals)
    return RLResult(ctx.run_dir, step, eval_metrics)


# ---------------------------------------------------------------------------------------------------
# Inputs


def check_answers(rows: list[dict], source: str) -> None:
    """Raise for the first row whose answer math-verify cannot parse (it could never be rewarded).

    Each distinct answer is checked once (the embedded task has ~100 distinct answers in 5000 rows).

    Raises:
        RetuInputError: `<source> row <i> (id ...): field 'answer' ... cannot be parsed by math-verify`.
    """
    verdict: dict[str, bool] = {}
    for i, row in enumerate(rows):
        answer = row["answer"]
        if answer not in verdict:
            verdict[answer] = check_gold(answer)
        if not verdict[answer]:
            raise RetuInputError(f"{source} row {i + 1} (id {row.get('id')}): field 'answer' {answer!r:.60} "
                                 "cannot be parsed by math-verify")


def drop_overlong(rows: list[dict], tokenizer: PreTrainedTokenizerBase, max_len: int) -> tuple[list[dict], int]:
    """Rows whose chat prompt fits `max_len` tokens, and how many were dropped.

    Raises:
        RetuInputError: Every prompt is too long.
    """
    kept = [r for r in rows if len(tokenizer.apply_chat_template(build_messages(r), tokenize=True,
                                                                   add_generation_prompt=True)) <= max_len]
    if not kept:
        raise RetuInputError(f"every training prompt is longer than data.max_prompt_len ({max_len} tokens)")
    return kept, len(rows) - len(kept)


def prompt_dataset(rows: list[dict]) -> Dataset:
    """TRL's train dataset: conversational `prompt`, plus `answer`, `solution` and `expert_reward`
    (the verifier's score of the expert text, `retu.data.expert`; 0 where no expert is used)."""
    return Dataset.from_dict({"prompt": [build_messages(r) for r in rows], "answer": [r["answer"] for r in rows],
                              "solution": [r.get("solution") or "" for r in rows],
                              "expert_reward": [float(r.get("expert_reward", 0.0)) for r in rows]})


def build_grpo_config(cfg: RunCfg, engine: str = "hf") -> GRPOConfig:
    """TRL's config for `cfg` generating with `engine` (`generators.resolve_engine`); TRL's own validation
    errors come back as one-line RetuInputErrors."""
    r = cfg.rollout
    if engine == "paged":
        paged_config(r.paged_config)  # TRL builds it only in the trainer; a bad key is found here
        generation = {"use_transformers_continuous_batching": True,
                      "transformers_continuous_batching_config": dict(r.paged_config)}
    else:
        generation = {} if engine == "hf" else {
            "use_vllm": True, "vllm_mode": "server" if engine == "vllm_server" else "colocate",
            "vllm_gpu_memory_utilization": r.vllm_gpu_memory,
            **({"vllm_server_base_url": r.vllm_server_url} if r.vllm_server_url else {})}
    rows = cfg.optim.batch_size * cfg.rollout.group_size
    world = check_split(cfg)
    gpu = torch.cuda.is_available()  # mixed precision on GPU only (as retu sft); the CPU runs float32
    save_steps = cfg.log.save_every or cfg.eval.every
    try:
        args = GRPOConfig(
            output_dir=str(staging_dir(cfg.log.run_dir)), per_device_train_batch_size=rows // (cfg.optim.grad_accum * world),
            num_generations=cfg.rollout.group_size,
            num_iterations=cfg.rollout.updates_per_batch, max_completion_length=cfg.data.max_response_len,
            temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, beta=0.0, **optim_args(cfg.optim),
            seed=cfg.seed, logging_steps=cfg.log.log_every,
            save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500, report_to="none",
            bf16=gpu and cfg.model.dtype == "bfloat16", fp16=gpu and cfg.model.dtype == "float16",
            use_cpu=not gpu, ddp_find_unused_parameters=False, **speed_args(cfg, cuda=gpu),
            disable_dropout=True, dataloader_num_workers=0, log_completions=False, disable_tqdm=True, **generation)
    except ValueError as exc:
        raise RetuInputError(f"TRL rejected the RL settings: {exc}") from None
    return args


def check_split(cfg: RunCfg) -> int:
    """The number of processes, once the batch splits into whole groups per process and micro-batch.

    Raises:
        RetuInputError: `optim.batch_size` or `rollout.gen_batch` does not divide by the processes, or
            a process's rows do not divide by `optim.grad_accum`.
    """
    world, o, r = world_size(), cfg.optim, cfg.rollout
    if o.batch_size % world or (r.gen_batch or 0) % world:
        raise RetuInputError(f"optim.batch_size ({o.batch_size}) and rollout.gen_batch ({r.gen_batch}) must divide "
                             f"by the {world} processes (each process takes whole prompt groups)")
    if (o.batch_size * r.group_size // world) % o.grad_accum:
        raise RetuInputError(f"a process's {o.batch_size * r.group_size // world} rows (optim.batch_size x "
                             f"rollout.group_size / {world} processes) must divide by optim.grad_accum ({o.grad_accum})")
    return world


def describe_branch(name_or_path: str) -> dict:
    """`curve` meta of run_start: which SFT checkpoint (step, EFLOPs spent) this RL run branches from.

    A retu checkpoint `runs/<sft run>/checkpoints/step-N` gives scene `<sft run>`, sft_step N and
    the SFT FLOPs stored with it; anything else (a base model) is scene "base" at step 0.
    """
    path = Path(name_or_path)
    if path.parent.name == "checkpoints" and path.name.startswith("step-") and path.is_dir():
        flops = read_state(path).get("flops")
        return {"kind": "rl", "scene": path.parent.parent.name, "sft_step": step_of(path),
                "sft_eflops": None if flops is None else flops / EFLOP}
    return {"kind": "rl", "scene": "base", "sft_step": 0, "sft_eflops": 0.0}


# ---------------------------------------------------------------------------------------------------
# Per-step hooks: records, evaluation, timing


class RLRecorder(TrainerCallback):
    """Writes train and eval records (with cumulative tokens and FLOPs) and runs the evaluations.

    The Trainer logs, then saves, each step; this callback evaluates in `on_step_end` and forces a
    train record at every checkpoint step, so every record of step N exists before `step-N` does.
    """

    def __init__(self, cfg: RunCfg, ctx: RunContext, ledger: ComputeLedger, eval_rows: list[dict],
                 tokenizer: PreTrainedTokenizerBase, watch: CeilingWatch, *, notify=None):
        self.write = is_main_process()  # every process evaluates its share; the main one writes
        self.generate_fn = None  # transformers' generate, or the trainer's vLLM engine (run_rl)
        self.cfg, self.logger, self.ledger = cfg, ctx.logger, ledger
        self.eval_rows, self.tokenizer = eval_rows, tokenizer
        self.resume_step = ctx.resume_step
        self.last_train_step = ctx.resume_step  # records up to here survived the rewind
        self.last_eval: dict[str, float] = {}
        self.watch, self.notify, self.pruned = watch, notify, False
        if ctx.resume_step:  # the evaluations before the resume point belong to the live fit
            watch.points = past_points(ctx.run_dir / "metrics.jsonl", ctx.resume_step)
        self._t0 = time.perf_counter()
        self._step_times: list[float] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.resume_step == 0:
            self._evaluate(model, 0)

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._step_times.append(time.perf_counter() - self._t0)
        step, every = state.global_step, self.cfg.eval.every
        last = step >= state.max_steps
        if last or (every and step % every == 0):
            self._evaluate(model, step)
            if not last and self.watch.hopeless():
                self._prune(step, state.max_steps)
                control.should_training_stop = last = True
        if last:
            control.should_save = True  # the final checkpoint marks the run done
        if last or (args.save_strategy == "steps" and step % args.save_steps == 0):
            control.should_log = True  # the checkpoint's step must have its train record

    def on_log(self, args, state, control, logs=None, **kwargs):
        step = state.global_step
        if step <= self.last_train_step:  # the Trainer's end-of-training summary repeats the last step
            return
        metrics = {k: v for k, v in logs.items() if "/" in k and k.split("/")[0] in RECORD_GROUPS}
        metrics["optim/lr"] = logs.get("learning_rate")
        metrics["optim/grad_norm"] = logs.get("grad_norm")
        metrics["perf/step_s"] = sum(self._step_times) / max(len(self._step_times), 1)
        self._step_times.clear()
        if self.write:
            write_record(self.logger, "train", step, self.ledger, metrics)
        self.last_train_step = step
        grad_norm = metrics["optim/grad_norm"]
        skipping = self.cfg.optim.skip_grad_norm > 0  # then a non-finite norm skipped its update
        if grad_norm is not None and not abs(grad_norm) < float("inf") and not skipping:
            raise TrainingDiverged(f"non-finite gradient norm at step {step}; the last checkpoint is still usable")

    def _evaluate(self, model, step: int) -> None:
        start = time.perf_counter()
        e = self.cfg.eval
        # The branch point: the SFT run evaluated this checkpoint on the same problems already.
        reused = recorded_eval(self.cfg.model.name_or_path, to_dict(self.cfg)) if step == 0 else None
        if reused is None:
            reused = evaluate_distributed(model, self.tokenizer, self.eval_rows, max_new_tokens=e.max_new_tokens,
                                          temperature=e.temperature, samples=e.samples, batch_size=e.batch_size,
                                          generate_fn=self.generate_fn).metrics()
        elif self.write:
            self.logger.log("event", step=0, event="eval_reused", source=self.cfg.model.name_or_path)
        self.last_eval = reused
        ceiling = self.watch.add(self.ledger.flops, reused.get("eval/overall"))
        if self.write:
            write_record(self.logger, "eval", step, self.ledger, {**self.last_eval, **ceiling,
                                                                   "perf/eval_s": time.perf_counter() - start})
        if self.notify is not None:
            self.notify(f"eval {reused.get('eval/overall', float('nan')):.1f}%  {self.watch.status()}".rstrip())

    def _prune(self, step: int, max_steps: int) -> None:
        """Stop here: record why, and the compute the remaining steps would have spent (at this
        run's mean FLOPs per step so far)."""
        self.pruned = True
        per_step = (self.watch.points[-1][0] - self.watch.points[0][0]) / step  # points[0] is step 0
        best = max(self.watch.rivals.items(), key=lambda kv: kv[1][0])
        if self.write:
            self.logger.log("event", step=step, event="pruned", interval=list(self.watch.live.interval),
                            best_branch=best[0], best_lo=best[1][0], steps_left=max_steps - step,
                            saved_flops=per_step * (max_steps - step))


def write_record(logger: JsonlLogger, kind: str, step: int, ledger: ComputeLedger, metrics: dict) -> None:
    """One metrics.jsonl record with the run's cumulative tokens and FLOPs."""
    logger.log(kind, step=step, tokens=ledger.tokens, flops=ledger.flops, metrics=metrics)
