"""What the RL integration tests share: a tiny problem set with one answer, a warmed-up tiny:1m that is
right about a fifth of the time at temperature 1, and a config writer.

The problems all have the answer 7 and the model (tiny:1m) gets ten plain SFT steps on them first, so
groups have mixed rewards and every branch of the rollout step runs.
"""

from pathlib import Path

import pytest
import yaml

from conftest import write_jsonl

TRAIN = [{"id": f"t{a}", "problem": f"Compute {a}+{7 - a}.", "answer": "7", "solution": f"{a}+{7 - a}=7\n\\boxed{{7}}"}
         for a in range(8)]
EVAL = [{"id": f"e{a}", "problem": f"Compute {a}+{7 - a}+0.", "answer": "7"} for a in range(4)]


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory) -> str:
    """tiny:1m after 10 full-sequence SFT steps on TRAIN (about 1 s), saved as a model directory."""
    import torch

    from retu.data.chat import build_messages
    from retu.engine.models import load_model

    model, tokenizer = load_model("tiny:1m")
    texts = [tokenizer.apply_chat_template(build_messages(r, with_solution=True), tokenize=False) for r in TRAIN]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(10):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = tmp_path_factory.mktemp("warm") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def make_config(tmp_path: Path, model: str, name: str = "cfg", **sections) -> Path:
    """A tiny RL config; `sections` update the defaults section by section."""
    cfg = {
        "kind": "rl", "seed": 0,
        "model": {"name_or_path": model},
        "data": {"train": str(write_jsonl(tmp_path / "train.jsonl", TRAIN)),
                 "eval": str(write_jsonl(tmp_path / "eval.jsonl", EVAL)), "max_response_len": 16},
        "optim": {"lr": 1e-3, "batch_size": 4, "max_steps": 3},
        "rollout": {"group_size": 4, "max_gen_rounds": 3, "updates_per_batch": 2},
        "loss": {"algo": "dapo_dc"},
        "eval": {"every": 2, "max_new_tokens": 16},
        "log": {"run_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 2},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
