"""LoRA through PEFT (model.lora_r): SFT trains only the adapter and counts its compute; a LoRA
checkpoint loads as a merged plain model, and RL branches from it with a fresh adapter."""

import json

import pytest
import torch
from safetensors.torch import load_file

from retu.config import load_config
from retu.engine.models import load_model
from retu.engine.rl import run_rl
from retu.engine.sft import run_sft
from retu.errors import RetuInputError
from retu.metrics import read_records

pytestmark = pytest.mark.integration

SFT = ["kind=sft", "model.name_or_path=tiny:1m", "model.lora_r=4", "data.arith_n_train=16", "data.arith_n_val=8",
       "data.arith_n_eval=8", "data.arith_train_steps=[1]", "data.arith_eval_steps=[1]", "optim.lr=1e-2",
       "optim.batch_size=8", "optim.max_steps=4", "sft.val_every=2", "eval.every=0", "eval.max_new_tokens=8"]


def test_lora_sft_then_rl_from_the_adapter_checkpoint(tmp_path):
    run_sft(load_config(None, [*SFT, f"log.run_dir={tmp_path / 'sft'}"]), progress=False)
    ckpt = tmp_path / "sft" / "checkpoints" / "step-4"
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "tiny:1m" and adapter["r"] == 4
    assert not (ckpt / "config.json").exists()  # the checkpoint holds the adapter only
    weights = load_file(ckpt / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)  # B starts at 0: it trained
    train = [r for r in read_records(tmp_path / "sft" / "metrics.jsonl") if r["kind"] == "train"]
    assert train[-1]["tokens"] > 0 and train[-1]["flops"] > 0  # the PEFT wrapper's forwards are counted

    merged, _ = load_model(str(ckpt))
    base, _ = load_model("tiny:1m")
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert changed and all("proj" in n for n in changed)  # only the adapted linear layers moved
    assert not any("lora_" in n for n, _ in merged.named_parameters())

    rl = ["kind=rl", f"model.name_or_path={ckpt}", "model.lora_r=4", "data.arith_n_train=16", "data.arith_n_val=8",
          "data.arith_n_eval=8", "data.arith_train_steps=[1]", "data.arith_eval_steps=[1]", "optim.batch_size=2",
          "optim.max_steps=2", "rollout.group_size=2", "data.max_response_len=8", "eval.every=0",
          "eval.max_new_tokens=8", "loss.algo=grpo", f"log.run_dir={tmp_path / 'rl'}"]
    result = run_rl(load_config(None, rl))
    assert result.step == 2
    start = next(r for r in read_records(tmp_path / "rl" / "metrics.jsonl") if r["kind"] == "run_start")
    assert start["curve"]["scene"] == "sft" and start["curve"]["sft_step"] == 4
    assert (tmp_path / "rl" / "checkpoints" / "step-2" / "adapter_config.json").is_file()


def test_bad_lora_settings_are_refused():
    with pytest.raises(RetuInputError, match="model.lora_r must be >= 0"):
        load_config(None, ["model.lora_r=-1"])
