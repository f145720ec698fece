"""Pure helpers of the RL rollout step (retu.engine.rollout): no model, hand-checked numbers."""

import doctest

import pytest

from retu.algos.registry import ALGORITHMS
from retu.config import RolloutCfg
from retu.engine import rollout
from retu.engine.rollout import (
    ComputeLedger,
    GroupAccumulator,
    RolloutExhaustedError,
    add_expert_rows,
    apply_upt_gate,
    compute_generation_flops,
    compute_training_flops,
    count_padding_rows,
    draw_prompt_indices,
    keep_mask,
    make_group,
    resolve_settings,
)
from retu.errors import RetuInputError
from retu.flops import ModelShape

G = 4


def group(num_correct: int, size: int = G, prompt_len: int = 3, completion_len: int = 2):
    """A group of `size` rollouts with the first `num_correct` correct."""
    rewards = [1.0] * num_correct + [0.0] * (size - num_correct)
    return make_group(list(range(prompt_len)), [[9] * completion_len] * size, rewards)


def test_doctests():
    result = doctest.testmod(rollout)
    assert result.attempted >= 10 and result.failed == 0


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
    with pytest.raises(RetuInputError, match="on_exhausted"):
        GroupAccumulator(target=1, filter_groups=True, max_rounds=1, on_exhausted="retry")


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


def test_resolve_settings_reads_the_preset_switches():
    cfg = RolloutCfg(group_size=8, n_expert=1, upt_gate=2, gen_batch=None, max_gen_rounds=5)
    dapo = resolve_settings(ALGORITHMS["dapo_d"].sampling, cfg, 4, 0)
    assert (dapo.filter_groups, dapo.gen_batch, dapo.max_rounds, dapo.n_expert, dapo.upt_gate) == (True, 8, 5, 0, None)
    grpo = resolve_settings(ALGORITHMS["grpo"].sampling, cfg, 4, 0)
    assert (grpo.filter_groups, grpo.gen_batch, grpo.max_rounds) == (False, 4, 1)
    luffy = resolve_settings(ALGORITHMS["luffy"].sampling, cfg, 4, 0)
    assert (luffy.n_expert, luffy.upt_gate) == (1, None)
    upt = resolve_settings(ALGORITHMS["upt"].sampling, cfg, 4, 0)
    assert (upt.n_expert, upt.upt_gate) == (0, 2)
    with pytest.raises(RetuInputError, match="n_expert"):
        resolve_settings(ALGORITHMS["luffy"].sampling, RolloutCfg(group_size=2, n_expert=2), 4, 0)


# ---------------------------------------------------------------------------------------------------
# Prompt draws, padding, FLOPs


def test_draw_prompt_indices_is_a_pure_function():
    a = draw_prompt_indices(5, 10, seed=1, step=3, round_idx=2)
    assert a == draw_prompt_indices(5, 10, seed=1, step=3, round_idx=2)
    assert len(set(a)) == 5 and all(0 <= i < 10 for i in a)
    assert a != draw_prompt_indices(5, 10, seed=1, step=3, round_idx=3)
    many = draw_prompt_indices(25, 10, seed=0, step=0, round_idx=0)
    assert len(many) == 25 and set(many[:10]) == set(range(10))  # whole permutations first


def test_count_padding_rows():
    assert [count_padding_rows(n, 4) for n in (8, 9, 10, 11)] == [0, 3, 2, 1]


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


# ---------------------------------------------------------------------------------------------------
# Generation engine (vLLM behind an import guard)


def test_engine_auto_picks_vllm_with_cuda_and_vllm_paged_with_cuda_alone_hf_on_cpu():
    from retu.engine.rollout import resolve_engine

    assert [resolve_engine("auto", cuda=c, vllm=v, n_expert=0) for c, v in
            [(False, False), (False, True), (True, False), (True, True)]] == ["hf", "hf", "paged", "vllm"]
    assert resolve_engine("hf", cuda=True, vllm=True, n_expert=0) == "hf"
    assert resolve_engine("paged", cuda=False, vllm=False, n_expert=2) == "paged"  # runs on CPU too (test_paged.py)
    assert resolve_engine("vllm_server", cuda=False, vllm=True, n_expert=0) == "vllm_server"


@pytest.mark.parametrize("engine, cuda, vllm, n_expert, match", [
    ("vllm", True, False, 0, "rollout.engine=vllm needs the vllm package, which is not installed"),
    ("vllm_server", True, False, 0, "rollout.engine=vllm_server needs the vllm package"),
    ("vllm", False, True, 0, "needs a CUDA GPU; set rollout.engine=hf"),
    ("vllm_server", True, True, 1, "group_size - 1 per prompt; use rollout.engine=vllm"),
])
def test_engine_refusals_are_clear(engine, cuda, vllm, n_expert, match):
    from retu.engine.rollout import resolve_engine

    with pytest.raises(RetuInputError, match=match):
        resolve_engine(engine, cuda=cuda, vllm=vllm, n_expert=n_expert)


def test_vllm_engines_reach_trls_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    cfg = load_config(None, ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "rollout.vllm_gpu_memory=0.5",
                             "rollout.vllm_server_url=http://h:9000", "log.run_dir=/nonexistent/run"])
    assert not build_grpo_config(cfg, "hf").use_vllm
    colocate, server = build_grpo_config(cfg, "vllm"), build_grpo_config(cfg, "vllm_server")
    assert (colocate.use_vllm, colocate.vllm_mode, colocate.vllm_gpu_memory_utilization) == (True, "colocate", 0.5)
    assert (server.vllm_mode, server.vllm_server_base_url) == ("server", "http://h:9000")
    with pytest.raises(RetuInputError, match="rollout.engine must be auto, hf, paged, vllm or vllm_server"):
        load_config(None, ["rollout.engine=sglang"])


def test_paged_engine_reaches_trls_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    base = ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "log.run_dir=/nonexistent/run"]
    cfg = load_config(None, [*base, "rollout.paged_config={num_blocks: 16, max_batch_tokens: 256}"])
    paged, hf = build_grpo_config(cfg, "paged"), build_grpo_config(cfg, "hf")
    assert (paged.use_transformers_continuous_batching, paged.use_vllm) == (True, False)
    assert paged.transformers_continuous_batching_config == {"num_blocks": 16, "max_batch_tokens": 256}
    assert (hf.use_transformers_continuous_batching, hf.transformers_continuous_batching_config) == (False, None)
    bad = load_config(None, [*base, "rollout.paged_config={blocks: 16}"])
    with pytest.raises(RetuInputError, match="rollout.paged_config: .*'blocks'"):
        build_grpo_config(bad, "paged")


def test_throughput_switches_reach_trls_rl_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    base = ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "log.run_dir=/nonexistent/run"]
    default = build_grpo_config(load_config(None, base))
    assert (default.activation_checkpointing, default.torch_compile, default.use_liger_kernel) == (False, False, False)
    on = build_grpo_config(load_config(None, [*base, "optim.gradient_checkpointing=true", "optim.torch_compile=true"]))
    assert (on.activation_checkpointing, on.torch_compile) == (True, True)
    with pytest.raises(RetuInputError, match=r"optim\.liger_kernel: .*set optim\.liger_kernel=false"):
        build_grpo_config(load_config(None, [*base, "optim.liger_kernel=true"]))


@pytest.mark.parametrize("world, overrides, match", [
    (3, ["optim.batch_size=4"], r"optim.batch_size \(4\) and rollout.gen_batch \(None\) must divide by the 3 processes"),
    (2, ["optim.batch_size=4", "rollout.gen_batch=5"], r"rollout.gen_batch \(5\) must divide by the 2 processes"),
    (2, ["optim.batch_size=4", "rollout.group_size=1", "optim.grad_accum=4"],
     r"a process's 2 rows .* must divide by optim.grad_accum \(4\)"),
])
def test_distributed_batch_split_refusals(monkeypatch, world, overrides, match):
    from retu.config import load_config
    from retu.engine.rl import check_split

    cfg = load_config(None, ["kind=rl", "log.run_dir=/nonexistent/run", *overrides])
    assert check_split(cfg) == 1  # one process: any batch splits
    monkeypatch.setenv("WORLD_SIZE", str(world))
    with pytest.raises(RetuInputError, match=match):
        check_split(cfg)


def test_distributed_split_accepts_whole_groups_per_process(monkeypatch):
    from retu.config import load_config
    from retu.engine.rl import check_split

    monkeypatch.setenv("WORLD_SIZE", "4")
    cfg = load_config(None, ["kind=rl", "optim.batch_size=8", "rollout.gen_batch=16", "optim.grad_accum=2",
                             "log.run_dir=/nonexistent/run"])
    assert check_split(cfg) == 4  # 2 prompts x 8 rows = 16 rows a process, 2 micro-batches of 8


def test_rank_blocks_cover_every_item_once():
    from retu.engine.rollout import rank_block

    for count in range(0, 9):
        for world in (1, 2, 3, 4):
            blocks = [list(range(count))[rank_block(count, world, r)] for r in range(world)]
            assert sum(blocks, []) == list(range(count))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_trainer_doctests():
    import retu.engine.rl_trainer as rl_trainer

    result = doctest.testmod(rl_trainer)
    assert result.attempted >= 2 and result.failed == 0
