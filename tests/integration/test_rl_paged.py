"""RL with rollout.engine=paged on CPU: TRL's continuous-batching rollouts train through retu's trainer,
and the periodic evaluation (greedy) uses the same engine and scores exactly as plain generate."""

import math

import pytest

from retu.config import load_config
from retu.metrics import read_records
from rl_setup import make_config, warm_model  # noqa: F401 (warm_model is a fixture)

pytestmark = pytest.mark.integration


def _run(tmp_path, model: str, engine: str) -> list[dict]:
    from retu.engine.rl import run_rl

    rollout = {"engine": engine, "paged_config": {"num_blocks": 16, "max_batch_tokens": 256}}
    path = make_config(tmp_path, model, engine, rollout=rollout, loss={"algo": "grpo"}, optim={"max_steps": 2},
                       log={"run_dir": str(tmp_path / engine), "log_every": 1, "save_every": 2})
    run_rl(load_config(path), progress=False)
    return [r for r in read_records(tmp_path / engine / "metrics.jsonl") if r["kind"] in ("train", "eval")]


def test_paged_rollouts_train_and_evaluate_like_plain_generate(tmp_path, warm_model, monkeypatch):
    from retu.engine import generators

    evaluations = []  # prompts of each evaluation that went through continuous batching
    paged_fn = generators.paged_generate_fn

    def counted(*args, **kwargs):
        generate = paged_fn(*args, **kwargs)
        return lambda prompts, **kw: evaluations.append(len(prompts)) or generate(prompts, **kw)

    monkeypatch.setattr(generators, "paged_generate_fn", counted)
    paged, plain = _run(tmp_path, warm_model, "paged"), _run(tmp_path, warm_model, "hf")
    assert evaluations == [4, 4]  # steps 0 and 2, each over the 4 evaluation problems
    assert [(r["kind"], r["step"]) for r in paged] == [("eval", 0), ("train", 1), ("eval", 2), ("train", 2)]
    assert all(math.isfinite(r["metrics"]["loss/total"]) for r in paged if r["kind"] == "train")
    assert paged[1]["metrics"]["completion/len_mean"] > 0 and paged[2]["metrics"]["eval/n"] == 4
    # The step-0 evaluation is greedy on the same weights: the same answers, so the same scores.
    scores = [{k: v for k, v in run[0]["metrics"].items() if k.startswith("eval/")} for run in (paged, plain)]
    assert scores[0] == scores[1] and len(scores[0]) == 4  # pass@1, overall, se, n (tests/unit/engine/test_paged.py
    # compares the texts themselves, on a model that gets answers right)
