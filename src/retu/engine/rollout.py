"""Pure helpers of the RL rollout step: groups, expert rows, the UPT gate, DAPO's accumulator, FLOPs.

The trainer (`retu.engine.rl_trainer`) generates and scores completions; every decision about which
rows form the training batch is made here, on plain data, so it is tested without a model:

    Group               one prompt's rows (token ids, rewards, is_demo) plus the lengths of every
                        sequence the engine produced for it (the FLOPs of generation)
    add_expert_rows     LUFFY/SRFT: an expert trajectory takes `n` rows of a group (is_demo True)
    apply_upt_gate      UPT: a group with k <= gate correct rollouts becomes one expert row
    GroupAccumulator    DAPO dynamic sampling: keep groups whose rewards differ (1..G-1 correct),
                        sample more rounds until the batch is full, stop after `max_rounds` with an
                        error or a partial batch, as configured
    draw_prompt_indices the prompts of an extra generation round, a pure function of (seed, step,
                        round), so a resumed run draws the same prompts without saved sampler state
    rank_block          the share of a round's prompts, or of a batch's groups, of one process
    ComputeLedger       cumulative tokens and FLOPs (paper App. C: generation 1F per generated
                        sequence, training 3F per trained sequence, per-sequence S_i^2 attention)

Which of these run is read from the algorithm preset's `Sampling` data (registry.py); nothing here
knows an algorithm's name.

Reference: spec/ALGORITHMS.md sections 4 (dynamic sampling), 6-8 (expert rows, gate), 10 (FLOPs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from retu.algos.advantages import dapo_keep_groups, upt_route
from retu.algos.registry import Sampling
from retu.config import RolloutCfg
from retu.errors import RetuInputError
from retu.flops import ModelShape, forward_flops

TRAIN_PASSES = 3.0  # forward + backward (2x forward) per trained token, paper App. C


class RolloutExhaustedError(RuntimeError):
    """DAPO used every allowed generation round without filling the batch (rollout.on_exhausted=error)."""


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class RolloutSettings:
    """How the generate-and-score step builds a batch: the preset's switches with the config's sizes.

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


def resolve_settings(sampling: Sampling, rollout: RolloutCfg, batch_prompts: int, seed: int) -> RolloutSettings:
    """Combine the preset's sampling switches (which mechanisms run) with the config's sizes.

    Args:
        sampling: The algorithm preset's `Sampling` (registry data).
        rollout: The run's rollout section.
        batch_prompts: Prompts per training batch (optim.batch_size).
        seed: Run seed.

    Returns:
        RolloutSettings.

    Raises:
        RetuInputError: Expert rows that leave no rollout in a group, or an empty generation round.

    >>> from retu.algos.registry import ALGORITHMS
    >>> s = resolve_settings(ALGORITHMS["dapo_dc"].sampling, RolloutCfg(), 8, 0)
    >>> s.gen_batch, s.filter_groups, s.max_rounds, s.n_expert, s.upt_gate
    (16, True, 10, 0, None)
    """
    n_expert = rollout.n_expert if sampling.demos_per_group > 0 else 0
    if n_expert >= rollout.group_size:
        raise RetuInputError(f"rollout.n_expert ({n_expert}) must be < rollout.group_size ({rollout.group_size}) "
                             "so each group keeps at least one rollout")
    dynamic = sampling.dynamic_sampling
    gen_batch = (rollout.gen_batch or 2 * batch_prompts) if dynamic else batch_prompts
    if gen_batch < 1:
        raise RetuInputError(f"rollout.gen_batch must be >= 1, got {gen_batch}")
    return RolloutSettings(
        group_size=rollout.group_size, batch_prompts=batch_prompts, gen_batch=gen_batch, filter_groups=dynamic,
        max_rounds=rollout.max_gen_rounds if dynamic else 1, on_exhausted=rollout.on_exhausted,
        n_expert=n_expert, upt_gate=rollout.upt_gate if sampling.upt_gate is not None else None, seed=seed)


def resolve_engine(engine: str, *, cuda: bool, vllm: bool, n_expert: int, field: str = "rollout.engine") -> str:
    """The generation engine a run uses: "hf" (transformers generate), "paged" (transformers continuous
    batching), "vllm" (TRL colocate) or "vllm_server" (TRL server mode).

    Args:
        engine: rollout.engine ("auto", "hf", "paged", "vllm", "vllm_server").
        cuda: A CUDA device is present.
        vllm: The vllm package is importable.
        n_expert: Expert rows per group (LUFFY/SRFT generate G - n_expert rollouts per prompt).
        field: The setting's name in error messages (`retu eval` passes "--engine").

    Raises:
        RetuInputError: vLLM asked for where it cannot run, or server mode with expert rows (TRL's
            server client takes the prompts in blocks of G).

    >>> [resolve_engine("auto", cuda=c, vllm=v, n_expert=0) for c, v in ((False, True), (True, False), (True, True))]
    ['hf', 'paged', 'vllm']
    """
    if engine == "auto":
        return ("vllm" if vllm else "paged") if cuda else "hf"
    if engine in ("hf", "paged"):
        return engine
    if not vllm:
        raise RetuInputError(f"{field}={engine} needs the vllm package, which is not installed: "
                             f"pip install -e '.[vllm]' on a CUDA machine, or set {field}=hf")
    if engine == "vllm" and not cuda:
        raise RetuInputError(f"{field}=vllm needs a CUDA GPU; set {field}=hf")
    if engine == "vllm_server" and n_expert:
        raise RetuInputError("rollout.engine=vllm_server takes prompts in blocks of rollout.group_size, but "
                             f"LUFFY/SRFT generate group_size - {n_expert} per prompt; use rollout.engine=vllm")
    return engine


# ---------------------------------------------------------------------------------------------------
# Groups


@dataclass(frozen=True)
class Group:
    """The rows of one prompt.

    Attributes:
        prompt_ids: Prompt token ids (shared by every row).
        completions: Completion token ids of each row (rollouts and expert rows).
        rewards: Binary reward of each row.
        is_demo: True for expert (demonstration) rows.
        gen_lens: Total length (prompt + completion) of every sequence the inference engine produced
            or prefilled for this prompt; it stays when a gate drops the rollouts (they were paid for).
    """

    prompt_ids: tuple[int, ...]
    completions: tuple[tuple[int, ...], ...]
    rewards: tuple[float, ...]
    is_demo: tuple[bool, ...]
    gen_lens: tuple[int, ...]

    def __post_init__(self):
        if not len(self.completions) == len(self.rewards) == len(self.is_demo):
            raise ValueError(f"group rows disagree: {len(self.completions)} completions, {len(self.rewards)} "
                             f"rewards, {len(self.is_demo)} is_demo flags")

    @property
    def size(self) -> int:
        """Rows in the group."""
        return len(self.completions)

    @property
    def num_correct(self) -> int:
        """Correct on-policy rollouts k (expert rows excluded)."""
        return sum(r == 1.0 for r, demo in zip(self.rewards, self.is_demo) if not demo)


def make_group(prompt_ids: Sequence[int], completions: Sequence[Sequence[int]], rewards: Sequence[float]) -> Group:
    """A group of on-policy rollouts, each generated by the engine.

    >>> make_group([5, 6], [[1, 2], [3]], [1.0, 0.0]).gen_lens
    (4, 3)
    """
    prompt = tuple(prompt_ids)
    rows = tuple(tuple(c) for c in completions)
    return Group(prompt, rows, tuple(float(r) for r in rewards), (False,) * len(rows),
                 tuple(len(prompt) + len(c) for c in rows))


def add_expert_rows(group: Group, expert_ids: Sequence[int], expert_reward: float, n_expert: int) -> Group:
    """LUFFY/SRFT: append `n_expert` copies of the expert trajectory as rows of the group.

    The caller generates G - n_expert rollouts, so the group keeps G rows. The expert row's reward
    enters the group mean (spec section 6), and the engine's prefill of the expert tokens is paid
    for as generation (1F per token; spec section 10 item 4).

    Args:
        group: On-policy rows.
        expert_ids: Expert completion token ids (solution + EOS, truncated to the response limit).
        expert_reward: The verifier's reward of the expert text.
        n_expert: Expert rows to add (the preset's `demos_per_group`).

    Returns:
        A new group, expert rows last.

    >>> g = add_expert_rows(make_group([5], [[1]], [0.0]), [7, 8], 1.0, 1)
    >>> g.is_demo, g.rewards, g.gen_lens
    ((False, True), (0.0, 1.0), (2, 3))
    """
    expert = tuple(expert_ids)
    return replace(group, completions=group.completions + (expert,) * n_expert,
                   rewards=group.rewards + (float(expert_reward),) * n_expert,
                   is_demo=group.is_demo + (True,) * n_expert,
                   gen_lens=group.gen_lens + (len(group.prompt_ids) + len(expert),) * n_expert)


def apply_upt_gate(group: Group, expert_ids: Sequence[int], expert_reward: float, gate: int) -> Group:
    """UPT switch: a group with at most `gate` correct rollouts becomes one expert row (SFT).

    Args:
        group: The G on-policy rollouts of one prompt.
        expert_ids: Expert completion token ids.
        expert_reward: The verifier's reward of the expert text (logged; SFT ignores it).
        gate: `switch_gate` g (RETU: 0 for Qwen, 2 for Llama).

    Returns:
        The group unchanged (RL) or a one-row expert group; `gen_lens` keeps the rollouts' cost.

    >>> g = apply_upt_gate(make_group([5], [[1], [2]], [0.0, 0.0]), [7], 1.0, 0)
    >>> g.size, g.is_demo, g.gen_lens
    (1, (True,), (2, 2))
    """
    if not bool(upt_route(group.num_correct, gate, group_size=group.size)):
        return group
    return replace(group, completions=(tuple(expert_ids),), rewards=(float(expert_reward),), is_demo=(True,))


# ---------------------------------------------------------------------------------------------------
# Dynamic sampling


def keep_mask(groups: Sequence[Group]) -> list[bool]:
    """DAPO's filter per group: True iff the group's rewards are not all equal (1..G-1 correct).

    >>> keep_mask([make_group([1], [[2], [3]], [1.0, 0.0]), make_group([1], [[2], [3]], [1.0, 1.0])])
    [True, False]
    """
    if not groups:
        return []
    rewards = torch.tensor([r for g in groups for r in g.rewards])  # [rows]
    group_ids = torch.tensor([i for i, g in enumerate(groups) for _ in g.rewards])  # [rows]
    keep_rows = dapo_keep_groups(rewards, group_ids)  # [rows]
    first_row = torch.tensor([0, *[g.size for g in groups]]).cumsum(0)[:-1]  # [groups]
    return keep_rows[first_row].tolist()


@dataclass(frozen=True)
class RolloutBatch:
    """What the accumulator hands the trainer.

    Attributes:
        groups: The training groups (whole groups only).
        rounds: Generation rounds used.
        groups_seen: Groups generated over all rounds (kept or not).
        zero_std_groups: Generated groups whose rewards were all equal.
        gen_lens: Lengths of every engine sequence of every round (generation FLOPs).
        partial: True when rounds ran out and the batch holds fewer than the target groups.
    """

    groups: tuple[Group, ...]
    rounds: int
    groups_seen: int
    zero_std_groups: int
    gen_lens: tuple[int, ...]
    partial: bool


@dataclass
class GroupAccumulator:
    """Collects generated groups round by round until a training batch is full.

    Without filtering (GRPO, LUFFY, ...) one round fills the batch. With filtering (DAPO) only groups
    whose rewards differ are kept; when `max_rounds` rounds (0 = unlimited) have not filled the batch,
    `finish` raises RolloutExhaustedError (`on_exhausted="error"`, the reference behaviour) or returns
    the kept groups as a partial batch. A partial batch with no kept group trains on the last round's
    groups, whose advantages are all exactly 0 (no signal, but well-formed shapes and a logged step).

    Attributes:
        target: Groups per training batch.
        filter_groups: Drop groups with all-equal rewards (the preset's `dynamic_sampling`).
        max_rounds: Generation rounds allowed; 0 = unlimited.
        on_exhausted: "error" or "partial".
    """

    target: int
    filter_groups: bool
    max_rounds: int
    on_exhausted: str
    kept: list[Group] = field(default_factory=list)
    last_round: list[Group] = field(default_factory=list)
    rounds: int = 0
    groups_seen: int = 0
    zero_std_groups: int = 0
    gen_lens: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.on_exhausted not in ("error", "partial"):
            raise RetuInputError(f"on_exhausted must be 'error' or 'partial', got {self.on_exhausted!r}")
        if self.target < 1 or self.max_rounds < 0:
            raise RetuInputError(f"need target >= 1 and max_rounds >= 0, got {self.target}, {self.max_rounds}")

    def add_round(self, groups: Sequence[Group]) -> None:
        """Add one generation round's groups (kept in order)."""
        keep = keep_mask(groups)
        self.rounds += 1
        self.groups_seen += len(groups)
        self.zero_std_groups += sum(not k and g.size > 1 for g, k in zip(groups, keep))
        self.gen_lens.extend(n for g in groups for n in g.gen_lens)
        self.last_round = list(groups)
        self.kept.extend(g for g, k in zip(groups, keep) if k or not self.filter_groups)

    @property
    def full(self) -> bool:
        """The batch holds at least `target` groups."""
        return len(self.kept) >= self.target

    def needs_more(self) -> bool:
        """True while the batch is not full and another round is allowed."""
        return not self.full and (self.max_rounds == 0 or self.rounds < self.max_rounds)

    def finish(self) -> RolloutBatch:
        """The training batch: the first `target` kept groups (surplus discarded, as verl does).

        Raises:
            RolloutExhaustedError: Rounds ran out with `on_exhausted="error"`.
        """
        partial = not self.full
        if partial and self.on_exhausted == "error":
            raise RolloutExhaustedError(
                f"dynamic sampling kept {len(self.kept)} of {self.target} groups after {self.rounds} generation "
                f"rounds ({self.zero_std_groups} of {self.groups_seen} groups had all-equal rewards); raise "
                "rollout.max_gen_rounds or set rollout.on_exhausted=partial")
        groups = self.kept[: self.target] if self.kept else self.last_round[: self.target]
        return RolloutBatch(tuple(groups), self.rounds, self.groups_seen, self.zero_std_groups,
                            tuple(self.gen_lens), partial)


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


def rank_block(count: int, world: int, rank: int) -> slice:
    """The contiguous share of `count` items that process `rank` of `world` takes; shares differ by at most 1.

    Each process of a distributed run generates its block of a round's prompts and trains on its
    block of the batch's groups (every process holds the whole batch after the gather).

    >>> [rank_block(5, 2, r) for r in range(2)]
    [slice(0, 2, None), slice(2, 5, None)]
    """
    return slice(rank * count // world, (rank + 1) * count // world)


def count_padding_rows(rows: int, multiple: int) -> int:
    """Rows to add so that `rows` divides into `multiple` equal micro-batches (padding rows are masked).

    >>> count_padding_rows(40, 3), count_padding_rows(48, 3)
    (2, 0)
    """
    return -rows % multiple


# ---------------------------------------------------------------------------------------------------
# Compute accounting


def compute_generation_flops(shape: ModelShape, gen_lens: Sequence[int]) -> float:
    """Generation FLOPs: one forward over every produced sequence (paper App. C, per-sequence S_i).

    >>> from retu.flops import ModelShape
    >>> s = ModelShape("toy", 1, 2, 4, 8, 1, 1, 2)
    >>> compute_generation_flops(s, [3])  # dense 144 per token x 3 + attention 4*1*1*2 = 8 x 3^2
    504.0
    """
    return forward_flops(shape, seq_lens=list(gen_lens)) if gen_lens else 0.0


def compute_training_flops(shape: ModelShape, seq_lens: Sequence[int]) -> float:
    """Training FLOPs of one pass over sequences: 3 forwards (forward + 2x backward)."""
    return TRAIN_PASSES * forward_flops(shape, seq_lens=list(seq_lens)) if seq_lens else 0.0


@dataclass
class ComputeLedger:
    """Cumulative training tokens and FLOPs of a run (what every train/eval record carries).

    Attributes:
        tokens: Prompt + completion tokens of every trained row, counted once per optimizer pass.
        flops: Generation FLOPs (every round, kept or not) plus training FLOPs.
    """

    tokens: float = 0.0
    flops: float = 0.0

    def add(self, *, tokens: float = 0.0, flops: float = 0.0) -> None:
        """Add work done."""
        self.tokens += tokens
        self.flops += flops

    def to_dict(self) -> dict[str, float]:
        """JSON-safe state (saved with each checkpoint)."""
        return {"tokens": self.tokens, "flops": self.flops}
