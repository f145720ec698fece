"""FLOPs estimator against hand-computed values (the spec vectors are in test_flops_vectors.py)."""

import json

import pytest

from retu.errors import RetuInputError
from retu.flops import EFLOP, estimate_flops, flops_per_token, load_shape, step_flops


def test_sft889k_segment_is_34_92_eflops():
    # The example: 360 steps x 512 sequences of 3771 tokens on Qwen2.5-7B = 34.92 EFLOPs.
    est = estimate_flops("Qwen2.5-7B", "sft", batch=512, seq_len=3771, steps=360)
    assert round(est.run_total / EFLOP, 2) == 34.92


def test_rl_paradigms_relative_to_sft_hand_checked():
    # With one F per sequence, sft = 3BF; grpo = (1 + 3) B G F; dapo = (K Bgen + 3 B) G F.
    per_seq = 100 * flops_per_token("Qwen2.5-7B", 100).total
    assert step_flops("Qwen2.5-7B", "sft", batch=2, seq_len=100).total == pytest.approx(6 * per_seq)
    assert step_flops("Qwen2.5-7B", "grpo", batch=2, seq_len=100, group_size=4).total == pytest.approx(32 * per_seq)
    dapo = step_flops("Qwen2.5-7B", "dapo", batch=64, seq_len=100, group_size=8, gen_batch=128, gen_rounds=2)
    assert dapo.generation == pytest.approx(2 * 128 * 8 * per_seq)
    assert dapo.training == pytest.approx(3 * 64 * 8 * per_seq)
    luffy = step_flops("Qwen2.5-7B", "luffy", batch=1, seq_len=100, expert_len=100)
    assert luffy.total == pytest.approx(4 * 8 * per_seq)  # 7 on-policy + 1 expert, each 1 gen + 3 train
    upt_sft = step_flops("Qwen2.5-7B", "upt", batch=1, seq_len=100, sft_fraction=1.0)
    assert upt_sft.generation == pytest.approx(8 * per_seq) and upt_sft.training == pytest.approx(3 * per_seq)


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(RetuInputError, match="not a preset"):
        load_shape("no-such-model")
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(RetuInputError, match="config lacks num_hidden_layers"):
        load_shape(str(tmp_path))
    with pytest.raises(RetuInputError, match="unknown paradigm 'ppo'"):
        step_flops("Qwen2.5-7B", "ppo", batch=1, seq_len=1)
    with pytest.raises(RetuInputError, match="gen_rounds does not apply to sft"):
        step_flops("Qwen2.5-7B", "sft", batch=1, seq_len=1, gen_rounds=2)
