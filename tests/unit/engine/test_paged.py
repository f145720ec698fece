"""The paged engine (transformers' continuous batching) on CPU: under greedy decoding it answers
exactly as plain generate, through `retu.eval.evaluate` (retu eval and the RL periodic evaluation)."""

import random

import pytest
import torch

from retu.engine.generators import choose_engine, open_engine, paged_config, paged_generate_fn
from retu.engine.models import load_model
from retu.errors import RetuInputError
from retu.eval import evaluate, generate
from retu.tasks.arith import generate_problem

# A small cache: transformers sizes it from free memory otherwise, which on CPU takes ~20 s to allocate.
SMALL = {"num_blocks": 16, "max_batch_tokens": 256}


@pytest.fixture(scope="module")
def base():
    return load_model("base:1m")  # pretrained: answers differ from problem to problem


def test_paged_greedy_answers_equal_plain_generate(base):
    model, tokenizer = base
    rows = [generate_problem(random.Random(i), steps) for i, steps in enumerate([1, 2, 3, 1, 2, 4, 5, 3])]
    paged = paged_generate_fn(model, tokenizer, paged_config(SMALL))
    plain = evaluate(model, tokenizer, rows, max_new_tokens=48, batch_size=8)
    fast = evaluate(model, tokenizer, rows, max_new_tokens=48, generate_fn=paged)
    texts = [r["completions"] for r in plain.records]
    assert [r["completions"] for r in fast.records] == texts
    assert len(set(map(tuple, texts))) >= 4  # distinct answers, not one degenerate string
    assert fast.overall == plain.overall


def test_paged_greedy_continuations_equal_plain_generate(base):
    model, tokenizer = base
    # Raw text (no chat turn) of different lengths: plain generate pads them on the left, paged does not.
    prompts = ["Compute 7+5-3+9.\n7+5=", "Compute 1+2.\n", "3-8=", "Compute 9-9+4-6+2-1.\n9-9=0\n"]
    plain = generate(model, tokenizer, prompts, max_new_tokens=24, batch_size=4)
    fast = paged_generate_fn(model, tokenizer, paged_config(SMALL))(prompts, max_new_tokens=24)
    assert fast == plain
    # Four different continuations of up to 24 tokens (one character a token) from prompts of four lengths.
    # Which characters they are depends on the CPU's float kernels, which train the base model.
    assert len({t[0] for t in plain}) == 4 and all(16 <= len(t[0]) <= 24 for t in plain)


def test_paged_samples_come_back_per_prompt(base):
    model, tokenizer = base
    prompts = ["<|im_start|>user\nCompute 2+3.<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>user\nhi"]
    out = paged_generate_fn(model, tokenizer, paged_config(SMALL))(prompts, max_new_tokens=8, temperature=1.0,
                                                                   samples=3)
    assert [len(answers) for answers in out] == [3, 3]
    with pytest.raises(RetuInputError, match="greedy decoding"):
        paged_generate_fn(model, tokenizer)(prompts, max_new_tokens=8, samples=2)


def test_engine_choice_for_commands():
    assert choose_engine("paged") == "paged"
    with pytest.raises(RetuInputError, match="--engine must be auto, hf, paged or vllm, got 'sglang'"):
        choose_engine("sglang")
    with open_engine("tiny:1m", "paged") as (model, tokenizer, generate_fn):
        assert generate_fn.__qualname__.startswith("paged_generate_fn") and model.dtype == torch.float32
    with pytest.raises(RetuInputError, match="rollout.paged_config: .*'blocks'"):
        paged_config({"blocks": 4})
