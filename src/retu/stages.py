"""Stages shared by `retu pipeline` and `retu compare`: the embedded default's run configs and the
settings every stage must share (running them: `retu.stage_pool`).

Fair comparisons: every stage of one pipeline or comparison evaluates on the same held-out problems
with the same settings, and every RL stage trains on the same prompts. `check_shared` refuses a set
of stage configs that differ in any of `retu.config.EVAL_KEYS` (or, among RL stages,
`RL_TRAIN_KEYS`), naming the key and the two stages.
"""

from __future__ import annotations

from pathlib import Path

from retu.config import EVAL_KEYS, RunCfg, config_value, load_config, to_dict
from retu.errors import RetuInputError
from retu.metrics import read_series
from retu.phases import PhaseResult, detect_phases

# The embedded default (DESIGN.md section 6) as overrides of retu.config's defaults; `SHARED` holds
# what every stage of a pipeline or comparison evaluates with. Measured in benchmarks/bench_pipeline.sh.
# The task is chains of 1-4 operations. Its expert drops the minus sign of running results of -3 or below
# 80% of the time (`EXPERT`, in the SFT trajectories and in LUFFY / SRFT / UPT's expert rows alike).
# SFT runs batches of 64 (at 32 the step at which it learns the task moved by hundreds of steps with the
# split); its learning rate decays (cosine, steps 45-600) to 0.2x and holds there, so pure SFT settles
# on the expert's majority habit (p 0.8 keeps its greedy choice firm) and levels off; RL at 0.25x that
# final rate removes the slip (docs/main_job.md, "Batch 64, chains of 1-4 operations, a firmer slip").
SHARED = ["data.train=arith", "data.eval=arith", "data.arith_n_val=200", "data.arith_n_eval=400",
          "data.arith_eval_steps=[1,2,3,4]", "eval.temperature=0.0", "eval.samples=1",
          "eval.max_new_tokens=64", "eval.batch_size=400"]
EXPERT = ["data.arith_sign_slip=0.8", "data.arith_slip_at=-3"]
DEFAULT_SFT = ["kind=sft", "model.name_or_path=base:1m", "data.val=arith", "data.arith_n_train=5000",
               "data.arith_train_steps=[1,2,3,4]", *EXPERT, "optim.lr=2.0e-3", "optim.schedule=cosine",
               "optim.warmup_ratio=0.06428", "optim.decay_steps=555", "optim.min_lr_ratio=0.2", "optim.batch_size=64",
               "optim.max_steps=700", "sft.val_every=50", "eval.every=100"]
DEFAULT_RL = ["kind=rl", "loss.algo=dapo_dc", "data.arith_n_train=5000", "data.arith_train_steps=[2,3,4]", *EXPERT,
              "optim.lr=1.0e-4", "optim.weight_decay=0.0", "optim.batch_size=8", "optim.max_steps=40",
              "rollout.group_size=8", "rollout.gen_batch=16", "rollout.max_gen_rounds=1", "rollout.temperature=1.0",
              "rollout.updates_per_batch=1", "data.max_response_len=64", "eval.every=5", "log.save_every=10"]

# Settings that define what RL trains on; equal across the RL stages of one study.
RL_TRAIN_KEYS = ("data.train", "data.arith_n_train", "data.arith_train_steps", "data.arith_sign_slip",
                 "data.arith_slip_at", "data.arith_noise", "data.max_response_len",
                 "rollout.group_size", "rollout.temperature", "optim.batch_size", "optim.max_steps")


def stage_config(path: str | None, defaults: list[str], overrides: list[str]) -> RunCfg:
    """A stage's run config: the YAML at `path` (else the embedded `defaults`) with `overrides`."""
    return load_config(path, overrides) if path else load_config(None, [*SHARED, *defaults, *overrides])


def method_config(path: str | None, overrides: list[str], algo: str, extra: list[str]) -> RunCfg:
    """An RL stage of algorithm `algo` on the shared RL config (`path`, else the embedded default).

    The shared config's `loss.kwargs` and replaced parts (`loss.advantage`, `loss.term`,
    `loss.aggregation`) belong to its own algorithm; another algorithm starts from its preset.
    `extra` (the stage's own overrides) comes last.
    """
    shared = stage_config(path, DEFAULT_RL, list(overrides))
    own = [] if shared.loss.algo == algo else [
        "loss.kwargs={}", "loss.advantage=null", "loss.term=null", "loss.aggregation=null"]
    return stage_config(path, DEFAULT_RL, [*overrides, f"loss.algo={algo}", *own, *extra])


def seed_overrides(seed: int, vary_base_model: bool = False) -> list[str]:
    """What a seed changes in every stage: training (data order and sampling) and the task's splits.
    The base model stays the same, as the paper's one base model, unless `vary_base_model`: then the
    seed also builds it (`model.seed`: the init and pretraining corpus of a `tiny:` or `base:` model)."""
    return [f"seed={seed}", f"data.seed={seed}", *([f"model.seed={seed}"] if vary_base_model else [])]


def check_vary_base_model(what: str, vary_base_model, overrides: list[str]) -> None:
    """Raise RetuInputError unless `vary_base_model` is a bool that no `model.seed=` in `overrides` contradicts."""
    if not isinstance(vary_base_model, bool):
        raise RetuInputError(f"{what}: vary_base_model must be true or false, got {vary_base_model!r}")
    fixed = [o for o in overrides if str(o).replace(" ", "").startswith("model.seed=")]
    if vary_base_model and fixed:
        raise RetuInputError(f"{what}: vary_base_model sets model.seed to each seed, so the override "
                             f"'{fixed[0]}' cannot apply; drop one of them")


def check_seeds(what: str, seeds: tuple) -> None:
    """Raise RetuInputError unless `seeds` (of `what`'s config) is a non-empty list of distinct integers."""
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                              for s in seeds):
        raise RetuInputError(f"{what}: seeds must be a non-empty list of distinct integers, got {list(seeds)}")


def _value(cfg: RunCfg, dotted: str):
    return config_value(to_dict(cfg), dotted)


def check_shared(stages: dict[str, RunCfg]) -> None:
    """Refuse stages that would not be compared fairly (see the module docstring).

    Raises:
        RetuInputError: `<key> differs between stages <a> (<v>) and <b> (<w>)`.
    """
    def check(keys: tuple[str, ...], cfgs: dict[str, RunCfg]) -> None:
        items = list(cfgs.items())
        for key in keys:
            first_name, first = items[0]
            for name, cfg in items[1:]:
                if _value(cfg, key) != _value(first, key):
                    raise RetuInputError(f"{key} differs between stages {first_name} ({_value(first, key)!r}) and "
                                         f"{name} ({_value(cfg, key)!r}); every stage must evaluate (and every RL "
                                         "stage train) on the same settings")

    if stages:
        check(EVAL_KEYS, stages)
    rl = {n: c for n, c in stages.items() if c.kind == "rl"}
    if rl:
        check(RL_TRAIN_KEYS, rl)


def sft_phases(run_dir: Path) -> PhaseResult:
    """Sub-phases of an SFT run from its logged validation losses."""
    series = read_series(run_dir / "metrics.jsonl", "loss/val")
    return detect_phases(series.step, series.value, source=str(run_dir))


def pick_steps(sft_run: Path, wanted: str | int | tuple, field_name: str) -> list[int]:
    """SFT steps with a saved checkpoint to branch from: "switch" (the recommended switch, else the
    last checkpoint), one step, or a tuple of steps.

    Raises:
        RetuInputError: No checkpoint saved, or none at a requested step (naming `field_name`).
    """
    from retu.engine.checkpoints import list_checkpoints, step_of

    saved = [step_of(p) for p in list_checkpoints(sft_run)]
    if not saved:
        raise RetuInputError(f"{sft_run}: the SFT run saved no checkpoint to branch from")
    if wanted == "switch":
        step = sft_phases(sft_run).recommended_step
        return [step if step in saved else max(saved)]
    steps = list(wanted) if isinstance(wanted, tuple) else [wanted]
    missing = [s for s in steps if s not in saved]
    if missing:
        raise RetuInputError(f"{field_name}: no checkpoint at SFT step {missing[0]} in {sft_run} "
                             f"(saved: {', '.join(map(str, saved))})")
    return steps
