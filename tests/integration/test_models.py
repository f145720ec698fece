"""SmolLM2-135M from its GGUF (offline, trainable, savable) and the pre-trained tiny base model."""

import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers

from retu.engine import models
from retu.engine.models import load_model
from retu.engine.pretrain_text import Chain, format_prompt

pytestmark = pytest.mark.integration

BOXED = re.compile(r"\\boxed\{(-?\d+)\}")
ONE_STEP = [Chain((a, b), (op,)) for a in range(10) for b in range(10) for op in "+-"]  # all 200


def greedy_answers(model, tokenizer, chains, max_new_tokens=16):
    """Greedy completions of the task prompts, one batch (left padding for generation)."""
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": format_prompt(c)}], tokenize=False, add_generation_prompt=True)
        for c in chains
    ]
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = "right"
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def accuracy(chains, answers):
    """Fraction whose last \\boxed{} integer equals the chain's value."""
    last = [BOXED.findall(a)[-1] if BOXED.search(a) else None for a in answers]
    return sum(x is not None and int(x) == c.answer for c, x in zip(chains, last)) / len(chains)


def test_smollm2_loads_offline_trains_and_round_trips(tmp_path):
    model, tok = load_model("smollm2-135m-instruct")
    # The GGUF quantizer is gone: a plain float32 model that autograd and save_pretrained accept.
    assert getattr(model, "hf_quantizer", None) is None and "quantization_config" not in model.config.to_dict()
    assert model.dtype == torch.float32 and 130e6 < model.num_parameters() < 140e6

    messages = [{"role": "user", "content": "What is 2+3?"}]
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        reply = tok.decode(model.generate(**enc, max_new_tokens=12, do_sample=False)[0, enc["input_ids"].shape[1] :])
    assert "5" in reply  # the dequantized weights are the real model

    model.train()
    loss = model(input_ids=enc["input_ids"], labels=enc["input_ids"]).loss
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)

    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    reloaded, reloaded_tok = load_model(tmp_path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**enc).logits, model(**enc).logits, rtol=1e-5, atol=1e-5)
    assert reloaded_tok(reply)["input_ids"] == tok(reply)["input_ids"]


def test_smollm2_is_dequantized_once_then_read_from_the_cache(tmp_path, monkeypatch):
    read = []

    def spy(*args):  # the GGUF read, kept to compare the cache with
        read.append(gguf_load(*args))
        return read[-1]

    gguf_load = models._load_gguf
    monkeypatch.setattr(models, "_load_gguf", spy)
    model, tok = models.smollm2_model(cache_dir=tmp_path)
    lock, entry = sorted((tmp_path / "smollm2").iterdir())  # one complete directory, no temporary left
    assert lock.name == f".{entry.name}.lock"
    size = (Path(models._smollm2_dir()) / models.SMOLLM2_GGUF).stat().st_size
    assert entry.name == f"SmolLM2-135M-Instruct.Q4_1-{size}-transformers{transformers.__version__}"
    [(gguf_model, gguf_tok)] = read
    # The cache holds exactly what the GGUF gives: every tensor, the tokenizer and its chat template.
    theirs = gguf_model.state_dict()
    assert list(model.state_dict()) == list(theirs)
    assert all(torch.equal(t, theirs[name]) for name, t in model.state_dict().items())
    assert model.config.tie_word_embeddings == gguf_model.config.tie_word_embeddings
    assert tok.get_vocab() == gguf_tok.get_vocab() and tok.chat_template == gguf_tok.chat_template
    chat = [{"role": "user", "content": "What is 2+3? Put it in \\boxed{}."}, {"role": "assistant", "content": "5"}]
    assert tok.apply_chat_template(chat) == gguf_tok.apply_chat_template(chat)
    assert (tok.eos_token, tok.pad_token) == (gguf_tok.eos_token, gguf_tok.pad_token)
    # Later loads read the cache only, in any dtype.
    monkeypatch.setattr(models, "_load_gguf", lambda *args: pytest.fail("the GGUF was read again"))
    again, _ = models.smollm2_model(dtype=torch.bfloat16, cache_dir=tmp_path)
    assert again.dtype == torch.bfloat16 and len(read) == 1
    assert torch.equal(again.model.embed_tokens.weight, theirs["model.embed_tokens.weight"].to(torch.bfloat16))


def test_base_model_answers_some_one_step_problems():
    # The default recipe (500 steps, ~45 s on 2 idle cores), from retu's own cache: the suite's other users
    # of base:1m read the same build. Fewer steps give a model that has not yet learned to read the
    # prompt (at 300 steps it answers from the operator alone).
    model, tok = models.base_model("1m", seed=0)
    path = models._cache_root(None) / "base" / f"1m-seed0-{models.BASE_VERSION}"
    assert (path / "config.json").is_file() and (path / "pretrain.json").is_file()

    answers = greedy_answers(model, tok, ONE_STEP)
    one_step = accuracy(ONE_STEP, answers)
    assert all(BOXED.fullmatch(a) for a in answers)  # it answers in the task's format
    assert len(set(answers)) > 5  # and the answer depends on the operands
    assert 0.05 <= one_step <= 0.3  # measured 0.12 (seed 0): some problems, far below SFT's 0.99


def test_a_base_model_is_built_once_then_read_from_the_cache(tmp_path, monkeypatch):
    model, _ = models.base_model("1m", seed=0, cache_dir=tmp_path, steps=20)  # a short build: the same path
    path = tmp_path / "base" / f"1m-seed0-steps20-{models.BASE_VERSION}"
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == [f".{path.name}.lock", path.name]  # no temporary
    assert (path / "config.json").is_file() and (path / "pretrain.json").is_file()

    monkeypatch.setattr(models, "_build_base", lambda *args: pytest.fail("built again"))
    cached, _ = models.base_model("1m", seed=0, cache_dir=tmp_path, steps=20)
    for a, b in zip(model.state_dict().values(), cached.state_dict().values(), strict=True):
        assert torch.equal(a, b)
