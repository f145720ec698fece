"""vLLM evaluation against a stand-in `vllm` module (no GPU here): what retu asks vLLM for, and what
it makes of the answers. The stand-in answers every prompt with "\\boxed{7}"."""

import importlib.machinery
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from conftest import cli_app, read_jsonl, write_jsonl
from retu.errors import RetuInputError


class FakeParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLLM:
    made: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        self.files = sorted(p.name for p in Path(kwargs["model"]).iterdir()) if Path(kwargs["model"]).is_dir() else []
        FakeLLM.made.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((list(prompts), params.kwargs))
        return [SimpleNamespace(outputs=[SimpleNamespace(text="so \\boxed{7}") for _ in range(params.kwargs["n"])])
                for _ in prompts]

    def get_tokenizer(self):
        from retu.engine.models import load_model

        return load_model("tiny:1m")[1]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = FakeLLM, FakeParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeLLM.made.clear()
    return module


def test_llm_generate_fn_asks_for_samples_and_keeps_prompt_order(fake_vllm):
    from retu.engine.generators import llm_generate_fn

    llm, done = FakeLLM(model="x"), []
    out = llm_generate_fn(llm, seed=3)(["p1", "p2"], max_new_tokens=5, temperature=0.7, top_p=0.9, samples=3,
                                       progress=done.append)
    assert out == [["so \\boxed{7}"] * 3] * 2 and done == [2]
    assert llm.calls == [(["p1", "p2"], {"n": 3, "temperature": 0.7, "top_p": 0.9, "max_tokens": 5, "seed": 3})]


def test_evaluate_scores_what_the_engine_answers(fake_vllm):
    from retu.engine.models import load_model
    from retu.engine.generators import llm_generate_fn
    from retu.eval import evaluate

    _, tokenizer = load_model("tiny:1m")
    rows = [{"id": 1, "problem": "3+4?", "answer": "7"}, {"id": 2, "problem": "3+5?", "answer": "8"}]
    result = evaluate(None, tokenizer, rows, max_new_tokens=4, generate_fn=llm_generate_fn(FakeLLM(model="x")))
    assert result.overall == 50.0 and [r["scores"] for r in result.records] == [[1.0], [0.0]]
    with pytest.raises(RetuInputError, match="greedy decoding"):
        evaluate(None, tokenizer, rows, samples=2, generate_fn=llm_generate_fn(FakeLLM(model="x")))


def test_trainer_engine_gets_the_trainers_current_weights_before_each_request(fake_vllm):
    from retu.engine.generators import trainer_generate_fn

    syncs = []
    engine = SimpleNamespace(mode="colocate", llm=FakeLLM(model="x"))
    trainer = SimpleNamespace(use_transformers_continuous_batching=False, vllm_generation=engine,
                              sync_vllm_weights=lambda: syncs.append(len(engine.llm.calls)))
    generate = trainer_generate_fn(trainer)
    generate(["p"], max_new_tokens=2)
    generate(["p"], max_new_tokens=2)
    assert syncs == [0, 1] and len(engine.llm.calls) == 2  # the trainer loads them once a step (test_rl_trainer)


def test_open_llm_writes_built_models_out_and_removes_them(fake_vllm, tmp_path):
    from retu.engine.models import load_model
    from retu.engine.generators import open_llm

    with open_llm("tiny:1m", gpu_memory=0.5, seed=2) as llm:
        written = Path(llm.kwargs["model"])
        assert written.is_dir() and {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(llm.files)
        assert (llm.kwargs["gpu_memory_utilization"], llm.kwargs["seed"]) == (0.5, 2)
    assert not written.exists()
    model, tokenizer = load_model("tiny:1m")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    with open_llm(str(tmp_path / "m")) as llm:  # a model directory: vLLM reads it in place
        assert llm.kwargs["model"] == str(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()


def test_retu_eval_engine_choice(fake_vllm, monkeypatch):
    import torch

    app, runner = cli_app(), CliRunner()
    args = ["eval", "tiny:1m", "--benchmarks", "arith", "--limit", "3", "--max-new-tokens", "4"]
    bad = runner.invoke(app, [*args, "--gpu-memory", "1.5"])
    assert str(bad.exception) == "--gpu-memory must be in (0, 1], got 1.5"
    refused = runner.invoke(app, [*args, "--engine", "vllm"])  # vllm importable, but no CUDA here
    assert isinstance(refused.exception, RetuInputError)
    assert str(refused.exception) == "--engine=vllm needs a CUDA GPU; set --engine=hf"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    done = runner.invoke(app, [*args, "--temperature", "0"])  # auto: vLLM on a CUDA machine with vllm
    assert done.exit_code == 0, done.output
    (llm,) = FakeLLM.made
    assert len(llm.calls) == 1 and len(llm.calls[0][0]) == 3 and llm.calls[0][1]["temperature"] == 0.0
    assert "overall" in done.output


def test_difficulty_labels_with_vllm(fake_vllm, monkeypatch, tmp_path):
    import torch

    app = cli_app()
    rows = [{"id": i, "problem": f"{i}+{7 - i}?", "answer": "7" if i % 2 else "8"} for i in range(6)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    args = ["data", "difficulty", str(tmp_path / "in.jsonl"), "--model", "tiny:1m", "--attempts", "2",
            "--max-new-tokens", "4", "--out", str(tmp_path / "out"), "--engine", "vllm"]
    refused = CliRunner().invoke(app, args)
    assert str(refused.exception) == "--engine=vllm needs a CUDA GPU; set --engine=hf"
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    scored = read_jsonl(tmp_path / "out" / "all.jsonl")
    assert [r["win_rate"] for r in scored] == [0.0, 1.0] * 3  # every answer is \boxed{7}
    assert FakeLLM.made[0].calls[0][1]["n"] == 2 and FakeLLM.made[0].calls[0][1]["temperature"] == 1.0


def test_trainer_server_engine_decodes_each_prompts_samples(fake_vllm):
    from retu.engine.generators import trainer_generate_fn
    from retu.engine.models import load_model

    _, tokenizer = load_model("tiny:1m")
    answers = ["\\boxed{7}", "\\boxed{8}", "no", "\\boxed{9}"]
    calls, syncs = [], []

    def client_generate(**kwargs):
        calls.append(kwargs)
        return {"completion_ids": [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]}

    engine = SimpleNamespace(mode="server", vllm_client=SimpleNamespace(generate=client_generate),
                             sync_weights=lambda: syncs.append(1))
    trainer = SimpleNamespace(use_transformers_continuous_batching=False, vllm_generation=engine,
                              sync_vllm_weights=engine.sync_weights, processing_class=tokenizer,
                              accelerator=SimpleNamespace(is_main_process=True, process_index=0))
    out = trainer_generate_fn(trainer, seed=5)(["p1", "p2"], max_new_tokens=6, temperature=0.5, samples=2)
    assert out == [answers[:2], answers[2:]] and syncs == [1]
    assert calls == [{"prompts": ["p1", "p2"], "n": 2, "temperature": 0.5, "top_p": 1.0, "max_tokens": 6,
                      "logprobs": None, "generation_kwargs": {"seed": 5}}]


def test_doctests():
    import doctest

    from retu.engine import generators

    result = doctest.testmod(generators)
    assert result.attempted >= 1 and result.failed == 0


def test_engine_auto_picks_vllm_with_cuda_and_vllm_paged_with_cuda_alone_hf_on_cpu():
    from retu.engine.generators import resolve_engine

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
    from retu.engine.generators import resolve_engine

    with pytest.raises(RetuInputError, match=match):
        resolve_engine(engine, cuda=cuda, vllm=vllm, n_expert=n_expert)
