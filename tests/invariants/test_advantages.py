"""Group advantages: zero mean per group, unit-ish std, exact zeros, and a plain loop reference."""

import math

import pytest
import torch

from retu.algos import advantages
from retu.algos.registry import ADVANTAGES

EPS = 1e-6


def random_groups(seed, binary):
    g = torch.Generator().manual_seed(seed)
    sizes = [1, 2, 3, 8, 8, 5, 1, 4]
    ids = torch.cat([torch.full((n,), 100 + 7 * k) for k, n in enumerate(sizes)])  # arbitrary ids
    perm = torch.randperm(ids.numel(), generator=g)  # rows of a group need not be adjacent
    rewards = torch.rand(ids.numel(), generator=g, dtype=torch.float64)
    rewards = (rewards < 0.5).double() if binary else rewards
    rewards[ids == 100 + 7 * 4] = 0.3  # one multi-row group with all-equal rewards
    return rewards[perm], ids[perm]


def loop_reference(rewards, ids, *, use_std, ddof):
    """Obviously-correct per-group loop (verl conventions)."""
    out = [0.0] * len(rewards)
    for gid in sorted(set(ids.tolist())):
        members = [i for i in range(len(rewards)) if ids[i] == gid]
        r = [float(rewards[i]) for i in members]
        if len(r) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(r) / len(r)
            std = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - ddof))
        for i, x in zip(members, r):
            centered = 0.0 if len(r) > 1 and max(r) == min(r) else x - mean
            out[i] = centered / (std + EPS) if use_std else centered
    return torch.tensor(out, dtype=torch.float64)


REFERENCE = {"grpo": dict(use_std=True, ddof=1), "grpo_population_std": dict(use_std=True, ddof=0),
             "grpo_no_std": dict(use_std=False, ddof=1)}


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("name", list(ADVANTAGES))
def test_matches_loop_reference(name, binary):
    rewards, ids = random_groups(0, binary)
    got = ADVANTAGES[name].fn(rewards, ids).advantages
    torch.testing.assert_close(got, loop_reference(rewards, ids, **REFERENCE[name]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(ADVANTAGES))
def test_zero_mean_per_group(name, seed):
    rewards, ids = random_groups(seed, binary=seed % 2 == 0)
    out = ADVANTAGES[name].fn(rewards, ids)
    for gid in set(ids.tolist()):
        members = ids == gid
        if members.sum() > 1:  # a singleton's advantage is its reward (mean 0 by convention)
            torch.testing.assert_close(out.advantages[members].mean(), torch.tensor(0.0, dtype=torch.float64),
                                       rtol=0, atol=1e-12)


def test_grpo_scales_to_unit_std_and_keeps_equal_groups_exactly_zero():
    rewards, ids = random_groups(3, binary=False)
    a = advantages.grpo(rewards, ids).advantages
    for gid in set(ids.tolist()):
        members = ids == gid
        r = rewards[members]
        if members.sum() > 1 and r.max() > r.min():
            std = r.std()  # unbiased
            torch.testing.assert_close(a[members].std(), std / (std + EPS), rtol=1e-9, atol=0)
    assert torch.equal(a[ids == 128], torch.zeros(8, dtype=torch.float64))


def test_permuting_rows_permutes_advantages():
    rewards, ids = random_groups(4, binary=True)
    perm = torch.randperm(rewards.numel(), generator=torch.Generator().manual_seed(9))
    for variant in ADVANTAGES.values():
        torch.testing.assert_close(variant.fn(rewards[perm], ids[perm]).advantages,
                                   variant.fn(rewards, ids).advantages[perm])


def test_dapo_keep_matches_rule_k_between_1_and_g_minus_1():
    rewards = torch.tensor([[float(i < k) for i in range(8)] for k in range(9)])  # k correct of 8
    keep = advantages.dapo_keep_groups(rewards).reshape(9, 8)
    assert keep[:, 0].tolist() == [1 <= k <= 7 for k in range(9)]
    assert keep.all(-1).equal(keep.any(-1))  # whole groups are kept or dropped
