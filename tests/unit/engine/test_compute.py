"""Compute accounting of RL runs (retu.engine.compute): FLOPs by hand, every DAPO round paid for."""

import doctest

from retu.engine import compute
from retu.engine.compute import ComputeLedger, compute_generation_flops, compute_training_flops
from retu.engine.groups import GroupAccumulator, make_group
from retu.flops import ModelShape


def group(num_correct: int, size: int, prompt_len: int, completion_len: int):
    """A group of `size` rollouts with the first `num_correct` correct."""
    rewards = [1.0] * num_correct + [0.0] * (size - num_correct)
    return make_group(list(range(prompt_len)), [[9] * completion_len] * size, rewards)


def test_doctests():
    result = doctest.testmod(compute)
    assert result.attempted >= 2 and result.failed == 0


SHAPE = ModelShape("toy", num_layers=1, hidden=2, ffn=4, vocab=8, num_heads=1, num_kv_heads=1, head_dim=2)


def test_flops_of_a_batch_by_hand():
    # Dense forward per token: 2 * [L (3 H Hff + 2 H (H + D_kv)) + 2 V H] = 2 * [24 + 16 + 32] = 144.
    # Attention per token per position: 4 L n_heads head_dim = 8, so a sequence of S costs 144 S + 8 S^2.
    # Generation (1 forward) of sequences of 3 and 5 tokens: 144*8 + 8*(9 + 25) = 1424.
    assert compute_generation_flops(SHAPE, [3, 5]) == 1424.0
    # Training is 3 forwards over the same sequences.
    assert compute_training_flops(SHAPE, [3, 5]) == 3 * 1424.0
    assert compute_generation_flops(SHAPE, []) == 0.0


def test_flops_of_a_dapo_step_count_every_round():
    acc = GroupAccumulator(target=1, filter_groups=True, max_rounds=3, on_exhausted="error")
    acc.add_round([group(0, size=2, prompt_len=2, completion_len=1)])  # 2 rows of S = 3, dropped
    acc.add_round([group(1, size=2, prompt_len=2, completion_len=1)])  # 2 rows of S = 3, kept
    batch = acc.finish()
    # Generation: 4 sequences of 3 tokens (both rounds); training: the kept 2 sequences, 3 forwards.
    per_seq = 144 * 3 + 8 * 9
    assert compute_generation_flops(SHAPE, batch.gen_lens) == 4 * per_seq
    kept_lens = [len(g.prompt_ids) + len(c) for g in batch.groups for c in g.completions]
    assert compute_training_flops(SHAPE, kept_lens) == 3 * 2 * per_seq


def test_compute_ledger_accumulates():
    ledger = ComputeLedger(tokens=10, flops=1.5)
    ledger.add(tokens=5, flops=2.0)
    ledger.add(flops=0.5)
    assert ledger.to_dict() == {"tokens": 15, "flops": 4.0}
