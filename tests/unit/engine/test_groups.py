"""Groups of the RL step (retu.engine.groups): expert rows, the UPT gate, DAPO's accumulator; hand-checked."""

import doctest

import pytest

from retu.engine import groups
from retu.engine.groups import (
    GroupAccumulator,
    RolloutExhaustedError,
    add_expert_rows,
    apply_upt_gate,
    keep_mask,
    make_group,
)

G = 4


def group(num_correct: int, size: int = G, prompt_len: int = 3, completion_len: int = 2):
    """A group of `size` rollouts with the first `num_correct` correct."""
    rewards = [1.0] * num_correct + [0.0] * (size - num_correct)
    return make_group(list(range(prompt_len)), [[9] * completion_len] * size, rewards)


def test_doctests():
    result = doctest.testmod(groups)
    assert result.attempted >= 5 and result.failed == 0


# ---------------------------------------------------------------------------------------------------
# Dynamic sampling


@pytest.mark.parametrize("k, kept", [(0, False), (1, True), (G - 1, True), (G, False)])
def test_keep_mask_keeps_groups_with_1_to_G_minus_1_correct(k, kept):
    assert keep_mask([group(k)]) == [kept]


def test_accumulator_keeps_whole_groups_until_full():
    acc = GroupAccumulator(target=3, filter_groups=True, max_rounds=10, on_exhausted="error")
    acc.add_round([group(0), group(2), group(4), group(1)])  # 2 informative groups
    assert acc.needs_more() and len(acc.kept) == 2
    acc.add_round([group(3), group(1), group(2)])  # 3 more: the batch overflows
    assert not acc.needs_more()
    batch = acc.finish()
    # The first 3 kept groups in generation order; surplus discarded, each group whole (G rows).
    assert [g.num_correct for g in batch.groups] == [2, 1, 3]
    assert all(g.size == G for g in batch.groups)
    assert (batch.rounds, batch.groups_seen, batch.zero_std_groups, batch.partial) == (2, 7, 2, False)
    # Generation is paid for every group of every round: 7 groups x 4 rows x (3 + 2) tokens.
    assert len(batch.gen_lens) == 28 and set(batch.gen_lens) == {5}


def test_accumulator_error_when_rounds_run_out():
    acc = GroupAccumulator(target=2, filter_groups=True, max_rounds=2, on_exhausted="error")
    acc.add_round([group(0), group(4)])
    assert acc.needs_more()
    acc.add_round([group(1), group(0)])
    assert not acc.needs_more()  # 2 rounds used, only 1 group kept
    with pytest.raises(RolloutExhaustedError, match=r"kept 1 of 2 groups after 2 generation rounds.*max_gen_rounds"):
        acc.finish()


def test_accumulator_partial_batch_when_rounds_run_out():
    acc = GroupAccumulator(target=3, filter_groups=True, max_rounds=2, on_exhausted="partial")
    for groups in ([group(0), group(2)], [group(4), group(0)]):
        acc.add_round(groups)
    batch = acc.finish()
    assert batch.partial and [g.num_correct for g in batch.groups] == [2] and batch.rounds == 2


def test_accumulator_partial_without_any_kept_group_trains_on_last_round():
    acc = GroupAccumulator(target=2, filter_groups=True, max_rounds=1, on_exhausted="partial")
    acc.add_round([group(0), group(4), group(0)])
    batch = acc.finish()
    # All-equal rewards: the registry gives these rows advantage 0, so the step has no signal.
    assert batch.partial and [g.num_correct for g in batch.groups] == [0, 4]


def test_accumulator_unlimited_rounds_and_no_filter():
    acc = GroupAccumulator(target=2, filter_groups=True, max_rounds=0, on_exhausted="error")
    for _ in range(20):
        acc.add_round([group(0)])
    assert acc.needs_more()  # max_rounds 0 = unlimited
    plain = GroupAccumulator(target=2, filter_groups=False, max_rounds=1, on_exhausted="error")
    plain.add_round([group(0), group(4)])
    assert not plain.needs_more() and [g.num_correct for g in plain.finish().groups] == [0, 4]


def test_accumulator_rejects_bad_settings():
    # A caller's bug: the config refuses these values first (test_config.py).
    with pytest.raises(ValueError, match="on_exhausted must be 'error' or 'partial', got 'retry'"):
        GroupAccumulator(target=1, filter_groups=True, max_rounds=1, on_exhausted="retry")
    with pytest.raises(ValueError, match=r"need target >= 1 and max_rounds >= 0, got 0, 1"):
        GroupAccumulator(target=0, filter_groups=True, max_rounds=1, on_exhausted="error")


# ---------------------------------------------------------------------------------------------------
# Expert rows and the UPT gate


def test_add_expert_rows_takes_rows_of_the_group():
    g = add_expert_rows(group(1, size=G - 1), expert_ids=[5, 6, 7], expert_reward=1.0, n_expert=1)
    assert g.size == G
    assert g.is_demo == (False, False, False, True)
    assert g.rewards == (1.0, 0.0, 0.0, 1.0)
    assert g.completions[-1] == (5, 6, 7)
    assert g.num_correct == 1  # expert rows do not count as correct rollouts
    # The expert's prefill is generation work: prompt 3 + 3 expert tokens.
    assert g.gen_lens == (5, 5, 5, 6)


@pytest.mark.parametrize("k, gate, to_sft", [(0, 0, True), (1, 0, False), (2, 2, True), (3, 2, False)])
def test_upt_gate_swaps_a_group_for_one_expert_row(k, gate, to_sft):
    g = apply_upt_gate(group(k), expert_ids=[5, 6], expert_reward=1.0, gate=gate)
    if to_sft:
        assert (g.size, g.is_demo, g.completions, g.rewards) == (1, (True,), ((5, 6),), (1.0,))
    else:
        assert g == group(k)
    assert g.gen_lens == (5,) * G  # the G rollouts were generated either way
