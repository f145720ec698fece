"""The RL step (retu.engine.rl_step) on CPU with a scripted engine, a character tokenizer and stand-in
gathers: kept groups, advantages, masks, shapes and normalisers, checked by hand."""

import doctest

import pytest
import torch

from retu.algos.registry import ALGORITHMS, build_algorithm
from retu.algos.types import LossOutput
from retu.config import RolloutCfg
from retu.engine import rl_step
from retu.engine.compute import compute_generation_flops, compute_training_flops
from retu.engine.rl_step import (
    StepHooks,
    build_batch,
    build_loss_inputs,
    count_padding_rows,
    draw_prompt_indices,
    forward_inputs,
    plan_step,
    record_micro_batch,
)
from retu.flops import ModelShape

PAD, EOS = 0, 1
RIGHT, WRONG = "\\boxed{7}", "no"  # with EOS: 10 and 3 completion tokens
SHAPE = ModelShape("toy", num_layers=1, hidden=2, ffn=4, vocab=8, num_heads=1, num_kv_heads=1, head_dim=2)


class CharTokenizer:
    """One token per character (its code point); PAD 0 and EOS 1 are the special tokens."""

    pad_token_id, eos_token_id = PAD, EOS

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["".join(chr(i) for i in x if i not in (PAD, EOS)) for x in ids]


class ScriptedEngine:
    """Generation call r answers its j-th prompt right `correct[r][j]` of `n` times (right ones first)."""

    def __init__(self, correct: list[list[int]], n: int):
        self.correct, self.n, self.calls = correct, n, []

    def __call__(self, prompts: list[str]):
        script = self.correct[len(self.calls)]
        self.calls.append(list(prompts))
        texts = [RIGHT if i % self.n < script[i // self.n] else WRONG for i in range(len(prompts))]
        tok = CharTokenizer()
        return [tok(p)["input_ids"] for p in prompts], [tok(t)["input_ids"] + [EOS] for t in texts]


def row(prompt: str, solution: str = RIGHT) -> dict:
    return {"prompt": prompt, "answer": "7", "solution": solution, "expert_reward": 1.0}


def hooks(engine, **kwargs) -> StepHooks:
    return StepHooks(generate=engine, gather=kwargs.pop("gather", lambda obj: [obj]), tokenizer=CharTokenizer(),
                     old_logprobs=kwargs.pop("old_logprobs", lambda inputs: None), shape=SHAPE, **kwargs)


DATASET = [row(f"Q{i}") for i in range(6)]


def test_doctests():
    result = doctest.testmod(rl_step)
    assert result.attempted >= 6 and result.failed == 0


def test_dapo_step_keeps_informative_groups_over_rounds_and_builds_the_model_inputs():
    # G 4, 2 groups a batch, 3 prompts a round (2 from the sampler + 1 drawn, then 3 drawn), 3 rounds allowed.
    plan = plan_step(ALGORITHMS["dapo_dc"].sampling,
                     RolloutCfg(group_size=4, gen_batch=3, max_gen_rounds=3, on_exhausted="error"), 2, 0)
    engine = ScriptedEngine([[0, 2, 4], [1, 4, 3]], n=4)  # correct rollouts per prompt, round by round
    sampler = [row("Pa")] * 4 + [row("Pbb")] * 4  # TRL's RepeatSampler: each prompt G times
    batch = build_batch(sampler, DATASET, plan=plan, advantage=build_algorithm("dapo_dc").advantage, step=5,
                        hooks=hooks(engine, max_completion_len=16, micro_batches=2,
                                    old_logprobs=lambda inputs: -inputs["completion_mask"].float()))

    # Round 1: Pa (0 right), Pbb (2), one drawn prompt (4): only Pbb kept. Round 2: three drawn prompts
    # with 1, 4 and 3 right: the first fills the batch, the third is surplus (discarded).
    first, second = (draw_prompt_indices(n, 6, seed=0, step=5, round_idx=r) for n, r in ((1, 0), (3, 1)))
    assert [c[::4] for c in engine.calls] == [["Pa", "Pbb", f"Q{first[0]}"], [f"Q{i}" for i in second]]
    r = batch.rollout
    assert [g.num_correct for g in r.groups] == [2, 1]
    assert [g.prompt_ids for g in r.groups] == [(ord("P"), ord("b"), ord("b")), (ord("Q"), ord(str(second[0])))]
    assert (r.rounds, r.groups_seen, r.zero_std_groups, r.partial) == (2, 6, 3, False)
    # Generation is paid for every rollout of both rounds: prompts 4 x (2 + 3 + 2) + 12 x 2, completions
    # 14 right x 10 + 10 wrong x 3.
    assert len(r.gen_lens) == 24 and sum(r.gen_lens) == 28 + 24 + 140 + 30
    assert batch.gen_flops == compute_generation_flops(SHAPE, r.gen_lens)

    x = batch.inputs
    assert list(x)[0] == "prompt_ids"  # TRL's shuffle takes the batch size from the first entry
    assert x["prompt_ids"].shape == (8, 3) and x["completion_ids"].shape == (8, 10)
    assert x["prompt_mask"].tolist() == [[1, 1, 1]] * 4 + [[0, 1, 1]] * 4  # left-padded 2-token prompts
    assert x["completion_mask"].sum(-1).tolist() == [10, 10, 3, 3, 10, 3, 3, 3]
    # GRPO advantages, unbiased std: [1, 1, 0, 0] -> +-0.5 / sqrt(1/3); [1, 0, 0, 0] -> (0.75, -0.25) / 0.5.
    assert x["advantages"].tolist() == pytest.approx([0.866025] * 2 + [-0.866025] * 2 + [1.5] + [-0.5] * 3, abs=1e-5)
    assert x["rewards"].tolist() == [1, 1, 0, 0, 1, 0, 0, 0] and not x["is_demo"].any()
    assert torch.equal(x["old_per_token_logps"], -x["completion_mask"].float())
    # Step-wide normalisers, 0-dim so that TRL's split hands them to every micro-batch whole.
    assert [x[k].item() for k in ("total_tokens", "total_demo_tokens", "total_seqs")] == [45.0, 0.0, 8.0]
    assert x["total_tokens"].dim() == 0
    m = batch.metrics
    assert m["reward/mean"] == pytest.approx(14 / 24) and m["completion/len_mean"] == pytest.approx(170 / 24)
    assert (m["reward/frac_zero_std"], m["reward/batch_mean"], m["reward/timeouts"]) == (0.5, 3 / 8, 0.0)
    assert (m["perf/gen_rounds"], m["perf/groups_kept"], m["perf/partial_batch"]) == (2.0, 2.0, 0.0)


def test_luffy_step_on_the_second_of_two_processes_trains_its_block_with_expert_rows():
    # LUFFY: 3 rollouts + 1 expert row a group. The stand-in gather hands back this process's group twice
    # (as if process 0 had made the same group), so the batch holds 2 groups and rank 1 trains on the second.
    plan = plan_step(ALGORITHMS["luffy"].sampling, RolloutCfg(group_size=4, n_expert=1), 2, 0)
    engine = ScriptedEngine([[1]], n=3)
    batch = build_batch([row("Pa", solution="so \\boxed{7}")] * 4, DATASET, plan=plan, step=0,
                        advantage=build_algorithm("luffy").advantage,
                        hooks=hooks(engine, max_completion_len=10, micro_batches=3, world=2, rank=1,
                                    gather=lambda obj: [obj, obj]))
    assert engine.calls == [["Pa"] * 3]  # G - n_expert rollouts; no extra round without dynamic sampling
    expert = tuple(ord(c) for c in "so \\boxed{")  # solution + EOS cut to the 10-token completion limit
    assert [g.completions[-1] for g in batch.rollout.groups] == [expert, expert]
    assert sorted(batch.rollout.gen_lens) == [5] * 4 + [12] * 4  # rollouts 2 + (3 or 10), expert prefill 2 + 10

    x = batch.inputs
    # This process's 4 rows, then 2 padding rows (row 0 again, mask 0) for 3 equal micro-batches.
    assert x["completion_ids"].shape == (6, 10) and count_padding_rows(4, 3) == 2
    assert x["completion_mask"].sum(-1).tolist() == [10, 3, 3, 10, 0, 0]
    assert torch.equal(x["completion_ids"][4], x["completion_ids"][0])
    # grpo_no_std: rewards [1, 0, 0, 1 (expert)] - mean 0.5; padding rows get 0.
    assert x["advantages"].tolist() == [0.5, -0.5, -0.5, 0.5, 0.0, 0.0]
    assert x["is_demo"].tolist() == [False, False, False, True, False, False]
    assert x["rewards"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert x["old_per_token_logps"] is None
    # Normalisers over the whole batch (both processes' groups): completions [10, 3, 3, 10] twice.
    assert [x[k].item() for k in ("total_tokens", "total_demo_tokens", "total_seqs")] == [52.0, 20.0, 8.0]
    assert batch.metrics["reward/mean"] == pytest.approx(1 / 3) and batch.metrics["reward/batch_mean"] == 0.5


def test_loss_inputs_and_record_of_a_micro_batch():
    inputs = {
        "prompt_ids": torch.tensor([[5, 6], [0, 7], [5, 6]]), "prompt_mask": torch.tensor([[1, 1], [0, 1], [1, 1]]),
        "completion_ids": torch.tensor([[8, 9, 1], [8, 1, 0], [8, 9, 1]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]]),  # row 3 pads
        "advantages": torch.tensor([0.5, -0.5, 0.0]), "rewards": torch.tensor([1.0, 0.0, 0.0]),
        "is_demo": torch.tensor([False, False, False]), "old_per_token_logps": None,
        "total_tokens": torch.tensor(10.0), "total_demo_tokens": torch.tensor(0.0), "total_seqs": torch.tensor(4.0)}
    ids, attention, completion_len = forward_inputs(inputs)
    assert ids.tolist()[1] == [0, 7, 8, 1, 0] and attention.tolist()[1] == [0, 1, 1, 1, 0] and completion_len == 3
    logprobs = torch.full((3, 3), -0.5, requires_grad=True)
    inp = build_loss_inputs(inputs, logprobs, None, 16)
    assert torch.equal(inp.old_logprobs, logprobs.detach()) and not inp.old_logprobs.requires_grad  # ratio 1
    assert inp.mask.tolist() == [[True] * 3, [True, True, False], [False] * 3] and inp.max_len == 16
    assert (inp.total_tokens.item(), inp.total_seqs.item()) == (10.0, 4.0)

    out = LossOutput(per_token=torch.zeros(3, 3), loss=torch.tensor(0.25),
                     metrics={"loss/pg": torch.tensor(0.25), "policy/ratio_mean": torch.tensor(1.0)})
    two = hooks(None, max_completion_len=16, gather=lambda obj: [obj, obj])  # two processes, same micro-batch
    record = record_micro_batch(inputs, out, two, grad_accum=4)
    # Real rows only: prompt + completion 2 + 3 and 1 + 2 tokens, on each of the 2 processes.
    assert record.tokens == 16.0 and record.flops == 2 * compute_training_flops(SHAPE, [5, 3])
    # loss/total: the processes' shares add up, times 4 micro-batches a step; other metrics are means.
    assert record.metrics == {"loss/total": 2.0, "loss/pg": 0.5, "policy/ratio_mean": 1.0}


def test_plan_reads_the_preset_switches():
    cfg = RolloutCfg(group_size=8, n_expert=1, upt_gate=2, gen_batch=None, max_gen_rounds=5)
    dapo = plan_step(ALGORITHMS["dapo_d"].sampling, cfg, 4, 0)
    assert (dapo.filter_groups, dapo.gen_batch, dapo.max_rounds, dapo.n_expert, dapo.upt_gate) == (True, 8, 5, 0, None)
    grpo = plan_step(ALGORITHMS["grpo"].sampling, cfg, 4, 0)
    assert (grpo.filter_groups, grpo.gen_batch, grpo.max_rounds) == (False, 4, 1)
    luffy = plan_step(ALGORITHMS["luffy"].sampling, cfg, 4, 0)
    assert (luffy.n_expert, luffy.upt_gate) == (1, None)
    upt = plan_step(ALGORITHMS["upt"].sampling, cfg, 4, 0)
    assert (upt.n_expert, upt.upt_gate) == (0, 2)


def test_draw_prompt_indices_is_a_pure_function():
    a = draw_prompt_indices(5, 10, seed=1, step=3, round_idx=2)
    assert a == draw_prompt_indices(5, 10, seed=1, step=3, round_idx=2)
    assert len(set(a)) == 5 and all(0 <= i < 10 for i in a)
    assert a != draw_prompt_indices(5, 10, seed=1, step=3, round_idx=3)
    many = draw_prompt_indices(25, 10, seed=0, step=0, round_idx=0)
    assert len(many) == 25 and set(many[:10]) == set(range(10))  # whole permutations first


def test_count_padding_rows():
    assert [count_padding_rows(n, 4) for n in (8, 9, 10, 11)] == [0, 3, 2, 1]
