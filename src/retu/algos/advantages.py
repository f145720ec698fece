"""Group-relative outcome advantages, DAPO's group filter and UPT's SFT/RL gate.

Every advantage function takes the scalar rewards of B rows and the group (prompt) each row belongs
to, and returns one detached advantage per row:

    grpo                 A_i = (r_i - mean_g) / (std_g + eps)   std unbiased (n - 1), eps = 1e-6
    grpo_population_std  same with the population std (n)
    grpo_no_std          A_i = r_i - mean_g                     (Dr. GRPO, LUFFY, SRFT, UPT)

The group mean runs over every row of the group, expert rows included (LUFFY and SRFT put the
expert's reward into the mean). Edge cases follow verl and are counted, never hidden:
    * a group of one row uses mean 0 and std 1 (A = r / (1 + eps)); counted in `reward/frac_singleton`;
    * a group whose rewards are all equal gets A = 0 exactly; counted in `reward/frac_zero_std`.

Rows are grouped either by `group_ids` [B] (any integer ids, e.g. prompt indices) or, when
`group_ids` is None, by passing `rewards` as [num_groups, G]; the output is then [num_groups * G]
in row-major order.

Reference: GRPO (DeepSeekMath) https://arxiv.org/abs/2402.03300; Dr. GRPO
https://arxiv.org/abs/2503.20783; spec/ALGORITHMS.md sections 3, 4, 6, 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from retu.algos.types import AdvantageOutput
from retu.errors import RetuInputError

# ---------------------------------------------------------------------------------------------------
# Group statistics


@dataclass(frozen=True, eq=False)
class _GroupStats:
    """Per-row views of each row's group statistics (all [B])."""

    rewards: Tensor  # [B] float
    mean: Tensor  # [B] group mean; 0 for a singleton group
    sq_dev: Tensor  # [B] sum over the group of (r - mean)^2
    count: Tensor  # [B] group size
    singleton: Tensor  # [B] bool
    zero_spread: Tensor  # [B] bool, all rewards of a multi-row group equal
    num_groups: int


def _flatten(rewards: Tensor, group_ids: Tensor | None) -> tuple[Tensor, Tensor]:
    """Return rewards [B] and group ids [B] from either accepted input form."""
    if group_ids is None:
        if rewards.dim() != 2:
            raise RetuInputError(f"rewards must be [num_groups, G] when group_ids is None, got shape "
                                 f"{tuple(rewards.shape)}; pass group_ids [B] for flat rewards")
        num_groups, group_size = rewards.shape
        ids = torch.arange(num_groups, device=rewards.device).repeat_interleave(group_size)
        return rewards.reshape(-1), ids
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise RetuInputError(f"rewards and group_ids must both be [B], got shapes {tuple(rewards.shape)} "
                             f"and {tuple(group_ids.shape)}")
    return rewards, group_ids


def _group_stats(rewards: Tensor, group_ids: Tensor | None) -> _GroupStats:
    """Compute every group statistic the advantage variants need, vectorized over groups."""
    rewards, group_ids = _flatten(rewards, group_ids)
    r = rewards.detach().to(torch.promote_types(rewards.dtype, torch.float32))  # [B]
    unique_ids, inv = torch.unique(group_ids, return_inverse=True)  # inv [B]: group index 0..n-1
    n = unique_ids.numel()
    zeros = torch.zeros(n, dtype=r.dtype, device=r.device)
    count = zeros.index_add(0, inv, torch.ones_like(r))  # [n]
    mean = zeros.index_add(0, inv, r) / count.clamp_min(1)  # [n]
    g_max = zeros.scatter_reduce(0, inv, r, "amax", include_self=False)  # [n]
    g_min = zeros.scatter_reduce(0, inv, r, "amin", include_self=False)  # [n]
    sq_dev = zeros.index_add(0, inv, (r - mean[inv]) ** 2)  # [n]
    singleton = count == 1
    # verl: a group of one uses mean 0 (and std 1), so its advantage is the reward itself.
    mean = torch.where(singleton, torch.zeros_like(mean), mean)
    return _GroupStats(rewards=r, mean=mean[inv], sq_dev=sq_dev[inv], count=count[inv],
                       singleton=singleton[inv], zero_spread=((g_max == g_min) & ~singleton)[inv],
                       num_groups=n)


def _advantage_output(stats: _GroupStats, std: Tensor | None, eps: float) -> AdvantageOutput:
    """Center (and scale) rewards; all-equal groups get exactly 0 (no 1e-17 rounding residue)."""
    centered = torch.where(stats.zero_spread, torch.zeros_like(stats.rewards), stats.rewards - stats.mean)
    advantages = centered if std is None else centered / (std + eps)  # [B]
    per_row_weight = 1.0 / stats.count  # each group sums to 1, so sums count groups
    metrics = {
        "reward/mean": stats.rewards.mean(),
        "reward/frac_zero_std": (per_row_weight * stats.zero_spread).sum() / max(stats.num_groups, 1),
        "reward/frac_singleton": (per_row_weight * stats.singleton).sum() / max(stats.num_groups, 1),
    }
    return AdvantageOutput(advantages=advantages, metrics=metrics)


# ---------------------------------------------------------------------------------------------------
# Registered advantage variants: fn(rewards, group_ids=None, *, hyperparameters) -> AdvantageOutput


def grpo(rewards: Tensor, group_ids: Tensor | None = None, *, eps: float = 1e-6) -> AdvantageOutput:
    """GRPO outcome advantage with the unbiased (n - 1) group std.

    Args:
        rewards: [B] float with `group_ids`, or [num_groups, G] without.
        group_ids: [B] int, the group (prompt) of each row, or None.
        eps: Added to the std before dividing.

    Returns:
        AdvantageOutput with advantages [B].

    Reference: https://arxiv.org/abs/2402.03300 (section 4.1.2, outcome supervision).
    Differs from paper:
        - Unbiased std (torch default, as verl); the paper does not say which.
        - A group of one row uses mean 0 and std 1 (verl), so A = r / (1 + eps).

    >>> grpo(torch.tensor([[1.0, 0.0, 0.0, 1.0]])).advantages
    tensor([ 0.8660, -0.8660, -0.8660,  0.8660])
    """
    stats = _group_stats(rewards, group_ids)
    std = (stats.sq_dev / (stats.count - 1).clamp_min(1)).sqrt()  # [B]
    std = torch.where(stats.singleton, torch.ones_like(std), std)
    return _advantage_output(stats, std, eps)


def grpo_population_std(rewards: Tensor, group_ids: Tensor | None = None, *,
                        eps: float = 1e-6) -> AdvantageOutput:
    """GRPO outcome advantage with the population (n) group std.

    Args:
        rewards: [B] float with `group_ids`, or [num_groups, G] without.
        group_ids: [B] int, or None.
        eps: Added to the std before dividing.

    Returns:
        AdvantageOutput with advantages [B].

    Reference: https://arxiv.org/abs/2402.03300
    Differs from paper:
        - Population std (numpy default, as some re-implementations use); see `grpo`.
    """
    stats = _group_stats(rewards, group_ids)
    std = (stats.sq_dev / stats.count).sqrt()  # [B]
    std = torch.where(stats.singleton, torch.ones_like(std), std)
    return _advantage_output(stats, std, eps)


def grpo_no_std(rewards: Tensor, group_ids: Tensor | None = None) -> AdvantageOutput:
    """Group-mean baseline without std scaling: A = r - mean (Dr. GRPO; LUFFY, SRFT, UPT scripts).

    Args:
        rewards: [B] float with `group_ids`, or [num_groups, G] without. For LUFFY/SRFT the expert
            row shares the group id of its prompt, so its reward enters the mean.
        group_ids: [B] int, or None.

    Returns:
        AdvantageOutput with advantages [B].

    Reference: Dr. GRPO https://arxiv.org/abs/2503.20783; scripts `algorithm.grpo_use_std=False`.

    >>> grpo_no_std(torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([0, 0, 0, 0])).advantages
    tensor([ 0.5000, -0.5000, -0.5000,  0.5000])
    """
    return _advantage_output(_group_stats(rewards, group_ids), None, 0.0)


# ---------------------------------------------------------------------------------------------------
# Sampling decisions (not losses; the trainer calls them while building the batch)


def dapo_keep_groups(rewards: Tensor, group_ids: Tensor | None = None) -> Tensor:
    """DAPO dynamic-sampling filter: keep a group iff its rewards are not all equal.

    For binary rewards and G rollouts this is RETU's rule 1 <= k <= G - 1 correct.

    Args:
        rewards: [B] with `group_ids`, or [num_groups, G].
        group_ids: [B] int, or None.

    Returns:
        [B] bool (row-major [num_groups * G] without group_ids): True where the row's group is kept.

    Reference: DAPO https://arxiv.org/abs/2503.14476 (Dynamic Sampling); spec section 4.
    Differs from paper:
        - A group of one row is kept (verl: keep iff std > 0 or G == 1).

    >>> dapo_keep_groups(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    tensor([ True,  True, False, False])
    """
    stats = _group_stats(rewards, group_ids)
    return ~stats.zero_spread


def upt_route(num_correct: Tensor | int, gate: int, *, group_size: int = 8) -> Tensor:
    """UPT switch gate: train a prompt with SFT on one expert row iff num_correct <= gate.

    Args:
        num_correct: Correct rollouts per prompt k, int or [num_prompts] int tensor.
        gate: `switch_gate` g, 0 <= g <= group_size (RETU: 0 for Qwen, 2 for Llama).
        group_size: Rollouts per prompt n_verify.

    Returns:
        Bool tensor shaped like num_correct: True = SFT (one expert row), False = RL (G rollouts).

    Reference: UPT/HPT https://arxiv.org/abs/2509.04419; spec section 8.
    Differs from paper:
        - The paper's p <= gamma is written with counts (k <= g, gamma = g / G) as the code does.
        - The unused third branch `switch_gate_off` is not implemented.

    >>> upt_route(torch.tensor([0, 1, 2, 3, 8]), 2)
    tensor([ True,  True,  True, False, False])
    """
    if isinstance(gate, bool) or not isinstance(gate, int) or not 0 <= gate <= group_size:
        raise RetuInputError(f"upt gate must be an int with 0 <= gate <= group_size ({group_size}), got {gate!r}")
    return torch.as_tensor(num_correct) <= gate
