"""One RL step of `retu rl`, top to bottom: the batch TRL trains on, then each micro-batch's loss inputs.

`build_batch` runs sections 1-6 once per rollout batch; the TRL adapter (`retu.engine.rl_trainer`)
runs section 7 for each micro-batch:

    1. Draw prompts   this process's share of the sampler's; DAPO's extra rounds draw theirs by a pure
                      function of (seed, step, round), so a resumed run draws the same prompts
    2. Generate       G - n_expert rollouts per prompt (the trainer's engine)
    3. Score          binary math-verify rewards (a timeout scores 0 and is counted)
    4. Group          one Group per prompt (`retu.engine.groups`): expert rows (LUFFY/SRFT), the UPT
                      gate, every process's groups gathered; DAPO's accumulator keeps groups with
                      1..G-1 correct and asks for more rounds until the batch is full or `max_rounds`
                      have run
    5. Advantages     the preset's advantage over the whole batch
    6. Model inputs   this process's block of the groups as padded tensors, old log-probs and the
                      step-wide normalisers
    7. Loss inputs    a micro-batch's `LossInputs`, and its tokens, FLOPs and metrics over processes

Generation, gathering across processes and log-probs come in as `StepHooks`, so unit tests run the
step with fakes on CPU. What runs is read from the `StepPlan` (the preset's `Sampling` applied to the
config's `RolloutCfg`); nothing here branches on an algorithm name.

Distributed runs: every process gets every process's groups of each round and runs the same
accumulator, so each holds the batch one process would build from those groups; each then trains
on its `retu.distributed.rank_block` of the groups, with advantages and normalisers over the whole
batch.

Differs from TRL: no reward scaling; prompts over the prompt limit are filtered by the recipe before
training (verl's `filter_overlong_prompts`), not truncated.

Reference: spec/ALGORITHMS.md sections 4 (dynamic sampling), 6-8 (expert rows, gate), 10 (FLOPs).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.utils import pad

from retu.algos.registry import Sampling
from retu.algos.types import AdvantageOutput, LossInputs, LossOutput
from retu.config import RolloutCfg
from retu.distributed import rank_block
from retu.engine.compute import compute_generation_flops, compute_training_flops
from retu.engine.groups import (
    Group,
    GroupAccumulator,
    RolloutBatch,
    add_expert_rows,
    apply_upt_gate,
    make_group,
    stack_rewards,
)
from retu.errors import RetuInputError
from retu.flops import ModelShape
from retu.rewards import score_completions

REWARD_TIMEOUT_S = 5.0
Stats = dict[str, list[float]]  # per-rollout values of a step: "reward", "completion_len", "timeouts"


# ---------------------------------------------------------------------------------------------------
# The step


@dataclass(frozen=True)
class StepPlan:
    """What every step does: the preset's switches (`Sampling`) applied to the config's sizes (`RolloutCfg`).

    Attributes:
        group_size: Rows per prompt G (rollouts plus expert rows).
        batch_prompts: Prompts (groups) per training batch.
        gen_batch: Prompts per generation round; equals `batch_prompts` without dynamic sampling.
        filter_groups: DAPO dynamic sampling (keep groups with differing rewards, sample more).
        max_rounds: Generation rounds allowed per batch (0 = unlimited; 1 without dynamic sampling).
        on_exhausted: "error" or "partial" when rounds run out.
        n_expert: Expert rows that take rows of each group (LUFFY/SRFT); 0 = none.
        upt_gate: UPT gate g, or None for no gate.
        seed: Seed of the extra rounds' prompt draws.
    """

    group_size: int
    batch_prompts: int
    gen_batch: int
    filter_groups: bool
    max_rounds: int
    on_exhausted: str
    n_expert: int
    upt_gate: int | None
    seed: int


def plan_step(sampling: Sampling, rollout: RolloutCfg, batch_prompts: int, seed: int) -> StepPlan:
    """The step's plan: which mechanisms run (the preset) at which sizes (the config, whose rules in
    `retu.config.check_rl` leave a rollout in each group and a prompt in each generation round).

    Args:
        batch_prompts: Prompts per training batch (optim.batch_size).
        seed: Run seed.

    >>> from retu.algos.registry import ALGORITHMS
    >>> p = plan_step(ALGORITHMS["dapo_dc"].sampling, RolloutCfg(), 8, 0)
    >>> p.gen_batch, p.filter_groups, p.max_rounds, p.n_expert, p.upt_gate
    (16, True, 10, 0, None)
    """
    n_expert = rollout.n_expert if sampling.demos_per_group > 0 else 0
    dynamic = sampling.dynamic_sampling
    gen_batch = (rollout.gen_batch or 2 * batch_prompts) if dynamic else batch_prompts
    return StepPlan(
        group_size=rollout.group_size, batch_prompts=batch_prompts, gen_batch=gen_batch, filter_groups=dynamic,
        max_rounds=rollout.max_gen_rounds if dynamic else 1, on_exhausted=rollout.on_exhausted,
        n_expert=n_expert, upt_gate=rollout.upt_gate if sampling.upt_gate is not None else None, seed=seed)


@dataclass(frozen=True)
class StepHooks:
    """What the step takes from the trainer it runs in (injected, so unit tests run it with fakes).

    Attributes:
        generate: Prompts [N] -> (prompt token ids [N], completion token ids [N]), one rollout per
            prompt. Every process calls it once per round, with no prompts too (it may be collective).
        gather: An object -> every process's object, in process order (`retu.distributed.gather`).
        old_logprobs: Model inputs -> log pi_old [B, T] under the weights that generated them, or None
            when the batch serves one optimizer step (the loss then uses ratio 1).
        tokenizer: Decodes completions, encodes expert solutions; has pad_token_id and eos_token_id.
        shape: The model's shape (FLOPs).
        max_completion_len: Completion token limit (expert rows are cut to it).
        micro_batches: Micro-batches the batch is split into (TRL's `steps_per_generation`).
        world, rank: Processes of the run, and this process's index.
        device: Where the model inputs go.
    """

    generate: Callable[[list], tuple[list[list[int]], list[list[int]]]]
    gather: Callable[[Any], list]
    old_logprobs: Callable[[dict], torch.Tensor | None]
    tokenizer: Any
    shape: ModelShape
    max_completion_len: int
    micro_batches: int = 1
    world: int = 1
    rank: int = 0
    device: torch.device | str = "cpu"


@dataclass(frozen=True)
class StepBatch:
    """One step's result: `inputs` for TRL (`build_model_inputs`), the `rollout` they come from (groups,
    rounds, generated lengths), its `metrics` (logged with every micro-batch the batch serves) and the
    `gen_flops` of generating every round."""

    inputs: dict
    rollout: RolloutBatch
    metrics: dict[str, float]
    gen_flops: float


def build_batch(sampler_rows: list[dict], dataset: Sequence[dict], *, plan: StepPlan, hooks: StepHooks,
                advantage: Callable[..., AdvantageOutput], step: int) -> StepBatch:
    """One training batch of whole groups, the same groups on every process (sections 1-6).

    Args:
        sampler_rows: This process's share of the sampler's rows, each repeated G times in a row
            (TRL's RepeatSampler); columns prompt, answer, solution, expert_reward.
        dataset: The training rows, for the prompts of extra rounds.
        advantage: The preset's advantage function (`Algorithm.advantage`).
        step: Optimizer steps done (seeds the extra rounds' draws).

    Raises:
        RolloutExhaustedError: Rounds ran out without a full batch and `on_exhausted` is "error".
    """
    rows = sampler_rows[:: plan.group_size] + draw_rows(  # 1. one row per prompt
        dataset, plan.gen_batch - plan.batch_prompts, plan, hooks, step=step, round_idx=0)
    acc = GroupAccumulator(target=plan.batch_prompts, filter_groups=plan.filter_groups,
                           max_rounds=plan.max_rounds, on_exhausted=plan.on_exhausted)
    stats: Stats = defaultdict(list)
    while True:
        acc.add_round(sample_round(rows, plan, hooks, stats))  # 2-4. generate, score, group
        if not acc.needs_more():
            break
        rows = draw_rows(dataset, plan.gen_batch, plan, hooks, step=step, round_idx=acc.rounds)
    batch = acc.finish()  # the same on every process
    adv = compute_advantages(batch.groups, advantage)  # 5.
    inputs = build_model_inputs(batch, adv.advantages, hooks)  # 6.
    return StepBatch(inputs, batch, rollout_metrics(batch, stats, adv.metrics),
                     compute_generation_flops(hooks.shape, batch.gen_lens))


# ---------------------------------------------------------------------------------------------------
# 1. Draw prompts


def draw_prompt_indices(count: int, pool_size: int, *, seed: int, step: int, round_idx: int) -> list[int]:
    """Indices of the prompts of one extra generation round, a pure function of its arguments.

    Sampled without replacement within a round (with replacement across rounds and steps), so a
    resumed run draws exactly the prompts the killed run would have drawn, with no sampler state.

    >>> draw_prompt_indices(3, 10, seed=0, step=4, round_idx=1) == draw_prompt_indices(3, 10, seed=0, step=4, round_idx=1)
    True
    """
    if pool_size < 1:
        raise RetuInputError("the training set is empty")
    rng = random.Random(f"retu-rl/{seed}/{step}/{round_idx}")  # str seeds hash stably across runs
    out: list[int] = []
    while len(out) < count:  # more prompts than the pool: whole permutations, then a partial one
        out += rng.sample(range(pool_size), min(pool_size, count - len(out)))
    return out


def draw_rows(dataset: Sequence[dict], count: int, plan: StepPlan, hooks: StepHooks, *, step: int,
              round_idx: int) -> list[dict]:
    """This process's block of an extra round's `count` prompts (every process draws the same round)."""
    if count <= 0:
        return []
    indices = draw_prompt_indices(count, len(dataset), seed=plan.seed, step=step, round_idx=round_idx)
    return [dataset[i] for i in indices[rank_block(count, hooks.world, hooks.rank)]]


# ---------------------------------------------------------------------------------------------------
# 2. Generate


def generate_rollouts(rows: list[dict], n: int, hooks: StepHooks) -> tuple[list, list, list[str]]:
    """`n` rollouts of each row's prompt, prompt-major: prompt ids [R n], completion ids [R n], texts [R n]."""
    prompt_ids, completion_ids = hooks.generate([r["prompt"] for r in rows for _ in range(n)])
    return prompt_ids, completion_ids, hooks.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)


def expert_completion(row: dict, hooks: StepHooks) -> tuple[list[int], float]:
    """A row's expert completion ids (solution + EOS, cut to the completion limit) and their reward
    (scored once by `retu.data.expert.build_expert_set`)."""
    ids = hooks.tokenizer(text=row["solution"], add_special_tokens=False)["input_ids"]
    return (list(ids) + [hooks.tokenizer.eos_token_id])[: hooks.max_completion_len], row["expert_reward"]


# ---------------------------------------------------------------------------------------------------
# 3. Score


def score_rollouts(texts: list[str], answers: list[str], stats: Stats) -> list[float]:
    """Binary math-verify rewards; a timeout scores 0 and is counted, an unparseable gold is a bug."""
    results = score_completions(texts, answers, timeout_s=REWARD_TIMEOUT_S)
    bad = [a for a, r in zip(answers, results) if r.score is None]
    if bad:  # the recipe checks every gold answer before training; reaching here is a bug
        raise RuntimeError(f"gold answer {bad[0]!r} cannot be parsed by math-verify")
    stats["reward"] += [r.score for r in results]
    stats["timeouts"].append(float(sum(r.status == "timeout" for r in results)))
    return [r.score for r in results]


def math_verify_reward(completions: list, answer: list[str], **kwargs) -> list[float]:
    """The same reward in TRL's reward-function form (conversational completions), which TRL demands.

    >>> math_verify_reward([[{"role": "assistant", "content": "\\\\boxed{4}"}]], ["4"])
    [1.0]
    """
    texts = [c[-1]["content"] for c in completions]
    return [r.score or 0.0 for r in score_completions(texts, answer, timeout_s=REWARD_TIMEOUT_S)]


# ---------------------------------------------------------------------------------------------------
# 4. Group


def sample_round(rows: list[dict], plan: StepPlan, hooks: StepHooks, stats: Stats) -> list[Group]:
    """One generation round: this process's groups of `rows`, then every process's, in process order.

    `stats` gets every process's per-rollout rewards, completion lengths and timeout counts.
    """
    n_gen = plan.group_size - plan.n_expert
    local: Stats = defaultdict(list)
    prompt_ids, completion_ids, texts = generate_rollouts(rows, n_gen, hooks)
    rewards = score_rollouts(texts, [r["answer"] for r in rows for _ in range(n_gen)], local)
    local["completion_len"] += [float(len(c)) for c in completion_ids]
    groups = []
    for j, row in enumerate(rows):
        sl = slice(j * n_gen, (j + 1) * n_gen)
        group = make_group(prompt_ids[j * n_gen], completion_ids[sl], rewards[sl])
        if plan.n_expert:
            group = add_expert_rows(group, *expert_completion(row, hooks), plan.n_expert)
        if plan.upt_gate is not None:
            group = apply_upt_gate(group, *expert_completion(row, hooks), plan.upt_gate)
        groups.append(group)
    parts = hooks.gather((groups, dict(local)))  # one (groups, stats) per process
    for _, part_stats in parts:
        for name, values in part_stats.items():
            stats[name] += values
    return [g for part_groups, _ in parts for g in part_groups]


# ---------------------------------------------------------------------------------------------------
# 5. Advantages


def compute_advantages(groups: Sequence[Group], advantage: Callable[..., AdvantageOutput]) -> AdvantageOutput:
    """The preset's advantages of every row of the batch [B] (rows in group order), with its metrics."""
    return advantage(*stack_rewards(groups))


# ---------------------------------------------------------------------------------------------------
# 6. Model inputs


def build_model_inputs(batch: RolloutBatch, advantages: torch.Tensor, hooks: StepHooks) -> dict:
    """This process's block of the batch's groups as the tensors TRL splits into micro-batches.

    Args:
        batch: The whole batch (every process holds all of it).
        advantages: [B] over every row of the batch, rows in group order.
        hooks: The trainer's old log-probs, tokenizer (padding), processes and device.

    Returns:
        prompt_ids [b, P] (left-padded), prompt_mask [b, P], completion_ids [b, T] (right-padded),
        completion_mask [b, T], advantages [b], rewards [b], is_demo [b], old_per_token_logps
        [b, T] or None; and over the whole batch, as 0-dim tensors that TRL's split keeps whole:
        total_tokens, total_demo_tokens (completion tokens) and total_seqs (non-empty completions).
        b is this process's rows plus padding rows up to a multiple of `micro_batches`.
    """
    rows = [(g.prompt_ids, c, r, d, i) for i, g in enumerate(batch.groups)
            for c, r, d in zip(g.completions, g.rewards, g.is_demo)]
    prompts, completions, rewards, is_demo, group_ids = (list(x) for x in zip(*rows))
    adv = advantages.float().tolist()  # [B]
    block = rank_block(len(batch.groups), hooks.world, hooks.rank)
    mine = [j for j, g in enumerate(group_ids) if block.start <= g < block.stop]
    # Padding rows repeat row 0 with an empty completion mask: they add nothing to any loss. A
    # process whose block is empty (a partial batch of fewer groups than processes) trains on them only.
    n_pad = count_padding_rows(len(mine), hooks.micro_batches) or (0 if mine else hooks.micro_batches)
    pick = mine + [0] * n_pad
    keep = [1] * len(mine) + [0] * n_pad
    device = hooks.device
    out = pad_tokens([prompts[j] for j in pick], [completions[j] for j in pick], keep,
                     hooks.tokenizer.pad_token_id, device)
    out["advantages"] = torch.tensor([adv[j] * k for j, k in zip(pick, keep)], device=device)
    out["rewards"] = torch.tensor([rewards[j] * k for j, k in zip(pick, keep)], device=device)
    out["is_demo"] = torch.tensor([is_demo[j] and bool(k) for j, k in zip(pick, keep)], device=device)
    out["old_per_token_logps"] = hooks.old_logprobs(out)
    lens = [len(c) for c in completions]
    out["total_tokens"] = torch.tensor(float(sum(lens)), device=device)
    out["total_demo_tokens"] = torch.tensor(float(sum(n for n, d in zip(lens, is_demo) if d)), device=device)
    out["total_seqs"] = torch.tensor(float(sum(n > 0 for n in lens)), device=device)
    return out


def forward_inputs(inputs: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The log-prob forward's input ids [b, P + T], attention mask [b, P + T] and T, of model inputs."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    return ids, attention, inputs["completion_ids"].size(1)


def count_padding_rows(rows: int, multiple: int) -> int:
    """Rows to add so that `rows` divides into `multiple` equal micro-batches (padding rows are masked).

    >>> count_padding_rows(40, 3), count_padding_rows(48, 3)
    (2, 0)
    """
    return -rows % multiple


def pad_tokens(prompts: list, completions: list, keep: list[int], pad_id: int, device) -> dict:
    """Left-padded prompts [b, P] and right-padded completions [b, T] with their masks (0 where `keep` is 0)."""
    prompt_t = [torch.tensor(p) for p in prompts]
    completion_t = [torch.tensor(c) for c in completions]
    completion_m = [torch.full((len(c),), k) for c, k in zip(completions, keep)]
    return {
        "prompt_ids": pad(prompt_t, pad_id, "left").to(device),
        "prompt_mask": pad([torch.ones_like(p) for p in prompt_t], 0, "left").to(device),
        "completion_ids": pad(completion_t, pad_id, "right").to(device),
        "completion_mask": pad(completion_m, 0, "right").to(device),
    }


def rollout_metrics(batch: RolloutBatch, stats: Stats, adv_metrics: dict) -> dict[str, float]:
    """Metrics of one rollout: rewards and lengths over every generated rollout of every round."""
    rewards, lens = stats["reward"], stats["completion_len"]
    return {
        "reward/mean": sum(rewards) / len(rewards),
        "reward/frac_zero_std": batch.zero_std_groups / batch.groups_seen,
        "reward/batch_mean": float(adv_metrics["reward/mean"]),
        "reward/timeouts": sum(stats["timeouts"]),
        "completion/len_mean": sum(lens) / len(lens),
        "perf/gen_rounds": float(batch.rounds),
        "perf/groups_kept": float(len(batch.groups)),
        "perf/partial_batch": float(batch.partial),
    }


# ---------------------------------------------------------------------------------------------------
# 7. Loss inputs


def build_loss_inputs(inputs: dict, logprobs: torch.Tensor, entropy: torch.Tensor | None,
                      max_completion_len: int) -> LossInputs:
    """One micro-batch's `LossInputs`: its model inputs (`build_model_inputs`) with log pi_theta.

    Args:
        inputs: A micro-batch of the model inputs.
        logprobs: [b, T] log pi_theta of the completion tokens, with gradient.
        entropy: [b, T] or None.
        max_completion_len: L_max of length-normalised losses.
    """
    old = inputs["old_per_token_logps"]
    return LossInputs(
        logprobs=logprobs, old_logprobs=logprobs.detach() if old is None else old,  # None: ratio 1, as verl
        advantages=inputs["advantages"], mask=inputs["completion_mask"].bool(), is_demo=inputs["is_demo"],
        rewards=inputs["rewards"], entropy=entropy, max_len=max_completion_len,
        total_tokens=inputs["total_tokens"], total_demo_tokens=inputs["total_demo_tokens"],
        total_seqs=inputs["total_seqs"])


@dataclass(frozen=True)
class MicroBatchRecord:
    """A micro-batch's prompt + completion `tokens` and training `flops` (real rows), and its loss
    `metrics` (`combine_metrics`, plus `loss/total`), over every process."""

    tokens: float
    flops: float
    metrics: dict[str, float]


def record_micro_batch(inputs: dict, out: LossOutput, hooks: StepHooks, *, grad_accum: int) -> MicroBatchRecord:
    """The training work and loss metrics of one micro-batch over every process (a collective call).

    Args:
        inputs, out: The micro-batch's model inputs and loss.
        hooks: The trainer's gather and model shape.
        grad_accum: Micro-batches per optimizer step.
    """
    completion_len = inputs["completion_mask"].sum(-1)  # [b]
    seq_lens = (inputs["prompt_mask"].sum(-1) + completion_len)[completion_len > 0].tolist()
    local = (float(sum(seq_lens)), compute_training_flops(hooks.shape, seq_lens), out.loss.detach().item(),
             {name: value.item() for name, value in out.metrics.items()})
    parts = hooks.gather(local)  # one entry per process
    # Each micro-batch's loss is its share of the step's loss (global normalisers), so the
    # window mean times the micro-batches per step is the mean step loss.
    metrics = {"loss/total": sum(p[2] for p in parts) * grad_accum, **combine_metrics([p[3] for p in parts])}
    return MicroBatchRecord(sum(p[0] for p in parts), sum(p[1] for p in parts), metrics)


def combine_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    """One micro-batch's loss metrics from every process: `loss/<part>` shares add up, other metrics
    are the mean of the finite values (NaN when none is finite).

    >>> combine_metrics([{"loss/pg": 0.5, "policy/ratio_mean": 1.0}, {"loss/pg": 0.25, "policy/ratio_mean": float("nan")}])
    {'loss/pg': 0.75, 'policy/ratio_mean': 1.0}
    """
    out = {}
    for name in parts[0]:
        values = [p[name] for p in parts]
        finite = [v for v in values if math.isfinite(v)]
        if name.startswith("loss/"):
            out[name] = sum(values)
        else:
            out[name] = sum(finite) / len(finite) if finite else math.nan
    return out
