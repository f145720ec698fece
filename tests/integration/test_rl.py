"""RL end to end on a tiny model: records, FLOPs, evaluations, checkpoints, resume, bad input.

The problems, the warmed-up model (right about a fifth of the time at temperature 1, so groups have
mixed rewards and every branch of the rollout step runs) and the config writer are in rl_setup.py.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rl_setup import TRAIN, make_config, warm_model  # noqa: F401 (warm_model is a fixture)

from conftest import write_jsonl

from retu.config import load_config
from retu.errors import RetuInputError
from retu.metrics import read_records

pytestmark = pytest.mark.integration

TRAIN_KEYS = ("reward/mean", "reward/frac_zero_std", "completion/len_mean", "policy/clip_frac_high",
              "policy/clip_frac_low", "policy/clip_frac_dual", "loss/total", "optim/lr", "optim/grad_norm",
              "perf/gen_rounds", "perf/step_s")


def by_kind(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == kind]


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retu", "rl", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Each algorithm runs and writes what a ceiling fit needs


@pytest.mark.parametrize("algo", ["grpo", "dapo_d", "dapo_dc"])
def test_rl_algorithm_writes_records_and_checkpoints(tmp_path, warm_model, algo):
    from transformers import AutoModelForCausalLM

    from retu.engine.rl import run_rl

    result = run_rl(load_config(make_config(tmp_path, warm_model, loss={"algo": algo})))
    run_dir = tmp_path / "run"
    train, evals = by_kind(run_dir, "train"), by_kind(run_dir, "eval")
    assert [r["step"] for r in train] == [1, 2, 3] and result.step == 3
    for rec in train:
        assert all(key in rec["metrics"] for key in TRAIN_KEYS), sorted(rec["metrics"])
        assert rec["metrics"]["loss/total"] is not None and rec["metrics"]["optim/lr"] == pytest.approx(1e-3)
    assert train[0]["metrics"]["reward/mean"] > 0 and train[0]["metrics"]["perf/groups_kept"] > 0
    # The second update of a rollout is off-policy: the ratio leaves 1 (and the clip may act).
    assert train[0]["metrics"]["policy/ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert abs(train[1]["metrics"]["policy/ratio_mean"] - 1.0) > 1e-4
    tokens, flops = [r["tokens"] for r in train], [r["flops"] for r in train]
    assert tokens == sorted(tokens) and tokens[0] > 0 and flops == sorted(flops) and flops[0] > 0
    # Step 2 reuses step 1's rollout (updates_per_batch 2): training FLOPs only, no generation.
    assert flops[1] - flops[0] < flops[0]
    # Evaluations: the branch point at step 0 (no compute yet), every 2 steps and at the end.
    assert [r["step"] for r in evals] == [0, 2, 3]
    assert evals[0]["flops"] == 0 and evals[-1]["flops"] == flops[-1]
    assert all("eval/overall" in r["metrics"] and "eval/all/pass@1" in r["metrics"] for r in evals)
    start = by_kind(run_dir, "run_start")[0]
    assert start["curve"] == {"kind": "rl", "scene": "base", "sft_step": 0, "sft_eflops": 0.0}
    assert by_kind(run_dir, "run_end")[-1]["status"] == "ok"
    # Checkpoints are complete HF saves that load as models.
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert ckpts == ["step-2", "step-3"]
    state = json.loads((run_dir / "checkpoints" / "step-3" / "retu_state.json").read_text())
    assert state["flops"] == pytest.approx(flops[-1]) and state["done"] is True
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "step-3")
    assert model.config.hidden_size == 128


# What each synchronized method logs about its own mechanism (window means of the train records).
METHOD_METRICS = {
    "luffy": {"policy/luffy_shaped_mean": (0.0, 1.0)},  # p / (p + 0.1) over expert tokens
    "srft": {"policy/srft_w_sft_mean": (0.0, 0.5), "policy/srft_w_rl_mean": (0.1, float("inf")),
             "policy/luffy_shaped_mean": (0.0, 1.0)},  # 0.5 exp(-H), 0.1 exp(H)
    "upt": {"policy/upt_sft_frac": (0.0, 1.0)},  # share of rows that are expert (SFT) rows
}


@pytest.mark.parametrize("algo", ["luffy", "srft", "upt"])
def test_hybrid_algorithms_train_on_expert_rows(tmp_path, warm_model, algo, capsys):
    from retu.engine.rl import run_rl

    # One expert trajectory answers 9 instead of 7: kept and trained (as the authors did), counted, warned.
    rows = [*TRAIN, {"id": "wrong", "problem": "Compute 3+4.", "answer": "7", "solution": "3+4=9\n\\boxed{9}"}]
    # UPT's gate 0: a group whose 4 rollouts are all wrong (~40% of them here) becomes one expert row.
    run_rl(load_config(make_config(tmp_path, warm_model, loss={"algo": algo}, optim={"max_steps": 2, "batch_size": 8},
                                   eval={"every": 0, "max_new_tokens": 4}),
                       [f"data.train={write_jsonl(tmp_path / 'mixed.jsonl', rows)}"]))
    assert "1 with an answer the verifier rejects (kept, as the authors did; e.g. wrong)" in capsys.readouterr().err
    event = next(r for r in by_kind(tmp_path / "run", "event") if r["event"] == "expert_data")
    assert (event["total"], event["kept"], event["overlong"], event["rejected"]) == (9, 9, 0, 1)
    train = by_kind(tmp_path / "run", "train")
    assert [r["step"] for r in train] == [1, 2]
    for rec in train:
        m = rec["metrics"]
        assert 0.0 < m["policy/expert_token_frac"] < 1.0  # expert and on-policy tokens both train
        assert m["loss/total"] is not None and rec["flops"] > 0
        for key, (low, high) in METHOD_METRICS[algo].items():
            assert m[key] is not None and low < m[key] < high, (key, m[key])


def test_upt_skips_updates_above_the_gradient_norm_threshold(tmp_path, warm_model):
    from safetensors.torch import load_file

    from retu.engine.rl import run_rl

    def final_weights(threshold: float, name: str) -> tuple[dict, list[dict]]:
        sections = {"loss": {"algo": "upt"}, "optim": {"max_steps": 2, "batch_size": 4, "skip_grad_norm": threshold},
                    "eval": {"every": 0, "max_new_tokens": 4}, "log": {"run_dir": str(tmp_path / name)}}
        run_rl(load_config(make_config(tmp_path, warm_model, name, **sections)))
        weights = load_file(tmp_path / name / "checkpoints" / "step-2" / "model.safetensors")
        return weights, by_kind(tmp_path / name, "train")

    start = load_file(Path(warm_model) / "model.safetensors")
    skipped, train = final_weights(1e-9, "skip")  # every update is above the threshold
    assert [r["metrics"]["optim/skipped"] for r in train] == [1.0, 1.0]
    assert all(r["metrics"]["optim/grad_norm"] > 1e-9 for r in train)
    assert all(skipped[k].equal(start[k]) for k in start)
    applied, train = final_weights(1e6, "apply")
    assert [r["metrics"]["optim/skipped"] for r in train] == [0.0, 0.0]
    assert any(not applied[k].equal(start[k]) for k in start)


def test_dapo_partial_and_error_when_rounds_run_out(tmp_path, warm_model):
    from retu.engine.rl import run_rl
    from retu.engine.groups import RolloutExhaustedError

    # A group of 2 with a ~20% reward rarely has mixed rewards; one round with 4 prompts rarely fills 4.
    sections = {"rollout": {"group_size": 2, "max_gen_rounds": 1, "updates_per_batch": 1, "on_exhausted": "partial"},
                "optim": {"max_steps": 2, "batch_size": 4}, "eval": {"every": 0, "max_new_tokens": 4}}
    run_rl(load_config(make_config(tmp_path, warm_model, **sections)))
    train = by_kind(tmp_path / "run", "train")
    assert [r["metrics"]["perf/gen_rounds"] for r in train] == [1.0, 1.0]
    assert all(r["metrics"]["perf/partial_batch"] == 1.0 for r in train)
    sections["rollout"] = {**sections["rollout"], "on_exhausted": "error"}
    sections["log"] = {"run_dir": str(tmp_path / "run_error")}
    with pytest.raises(RolloutExhaustedError, match="max_gen_rounds"):
        run_rl(load_config(make_config(tmp_path, warm_model, "error", **sections)))
    assert by_kind(tmp_path / "run_error", "run_end")[-1]["status"] == "failed"


# ---------------------------------------------------------------------------------------------------
# Resume after kill -9


@pytest.mark.parametrize("algo", ["dapo_dc", "luffy", "srft", "upt"])
def test_rl_resume_after_kill_has_no_duplicate_records(tmp_path, warm_model, algo):
    from retu.engine.rl import run_rl

    config = make_config(tmp_path, warm_model, optim={"max_steps": 6, "batch_size": 2}, loss={"algo": algo},
                         rollout={"group_size": 2, "upt_gate": 1},
                         eval={"every": 2, "max_new_tokens": 6},
                         data={"max_response_len": 6, "keep_overlong_expert": True})
    ckpts = tmp_path / "run" / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-m", "retu", "rl", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (ckpts / "step-4" / "retu_state.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # right after the 2nd checkpoint
    proc.wait()
    assert run_rl(load_config(config), progress=False).step == 6  # exit codes: test_rl_cli_exit_codes
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    for kind in ("train", "eval"):
        steps = [r["step"] for r in records if r["kind"] == kind]
        assert steps == sorted(set(steps)), (kind, steps)
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 2, 4, 6]
    assert [r["resume_step"] for r in records if r["kind"] == "run_start"][-1] >= 4
    assert records[-1]["kind"] == "run_end" and records[-1]["status"] == "ok"
    flops = [r["flops"] for r in records if r["kind"] == "train"]
    assert flops == sorted(flops)


# ---------------------------------------------------------------------------------------------------
# Bad input: one clear line, exit code 2, nothing written


@pytest.mark.parametrize("case, match", [
    ("no_answer", "missing field 'answer'"),
    ("bad_answer", "cannot be parsed by math-verify"),
    ("not_a_model", "not a model directory"),
    ("rows_per_step", "divisible by optim.grad_accum"),
    ("trl_group", "TRL rejected the RL settings: .*at least 2 generations"),
    ("kl", "beta_kl: a KL penalty needs reference log-probs"),
    ("algo", r"loss\.algo must be one of grpo, .*, got 'ppo'"),
])
def test_rl_bad_input_is_refused_before_training(tmp_path, warm_model, case, match):
    from retu.engine.rl import run_rl

    bad_rows = {"no_answer": [{"problem": "Compute 1+1."}], "bad_answer": [{"problem": "p", "answer": "}{"}]}
    rows_file = write_jsonl(tmp_path / "bad.jsonl", bad_rows.get(case, []))
    overrides = {
        "no_answer": [f"data.train={rows_file}"],
        "bad_answer": [f"data.train={rows_file}"],
        "not_a_model": [f"model.name_or_path={tmp_path}"],
        "rows_per_step": ["optim.batch_size=3", "rollout.group_size=2", "optim.grad_accum=4"],
        "trl_group": ["rollout.group_size=1", "rollout.upt_gate=0"],
        "kl": ["loss.kwargs.beta_kl=0.001"],
        "algo": ["loss.algo=ppo"],
    }[case]
    with pytest.raises(RetuInputError, match=match):
        run_rl(load_config(make_config(tmp_path, warm_model), overrides))
    assert not (tmp_path / "run").exists()


def test_rl_cli_exit_codes(tmp_path):
    config = make_config(tmp_path, "tiny:1m")
    unknown = run_cli(config, "rollout.group_sise=4")
    assert unknown.returncode == 2 and "unknown key 'rollout.group_sise'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    not_model = run_cli(config, f"model.name_or_path={tmp_path}")
    assert not_model.returncode == 2 and not_model.stderr.strip().splitlines() == [
        f"retu: error: {tmp_path}: not a model directory (no config.json)"]
    assert not (tmp_path / "run").exists()


def test_a_hopeless_run_is_pruned_after_a_checkpoint_and_resumes_to_the_end_without_rivals(tmp_path, warm_model,
                                                                                          monkeypatch):
    from retu.engine import ceiling_watch
    from retu.engine.rl import run_rl
    from retu.scaling.live import LiveCeiling

    # The live fit itself is tested in tests/unit; here a stand-in gives an interval from the 3rd evaluation on.
    monkeypatch.setattr(ceiling_watch, "estimate_live_ceiling",
                        lambda x, y, p_start, prior: LiveCeiling(50.0, 40.0, 60.0, len(x)) if len(x) >= 3 else None)
    cfg = load_config(make_config(tmp_path, warm_model, optim={"lr": 1e-3, "batch_size": 4, "max_steps": 5},
                                  eval={"every": 1, "max_new_tokens": 16}, log={"run_dir": str(tmp_path / "run"),
                                                                                "log_every": 1, "save_every": 4}))
    result = run_rl(cfg, rivals={"best": (61.0, 70.0), "other": (30.0, 45.0)})
    run_dir = tmp_path / "run"
    evals, end = by_kind(run_dir, "eval"), by_kind(run_dir, "run_end")[-1]
    assert result.step == 2 and end["status"] == "pruned" and end["step"] == 2
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert "ceiling/A" not in evals[1]["metrics"]
    assert [evals[2]["metrics"][k] for k in ("ceiling/A", "ceiling/lo", "ceiling/hi")] == [50.0, 40.0, 60.0]
    event = [r for r in by_kind(run_dir, "event") if r.get("event") == "pruned"][0]
    assert event["best_branch"] == "best" and event["best_lo"] == 61.0 and event["steps_left"] == 3
    assert event["saved_flops"] == pytest.approx(evals[2]["flops"] / 2 * 3)  # this run's FLOPs per step x 3
    assert (run_dir / "checkpoints" / "step-2").is_dir()  # the stop saved its step, off the save_every grid

    result = run_rl(cfg)  # no rivals (prune: false): resumes at step 2 and trains to the end
    assert result.step == 5 and by_kind(run_dir, "run_end")[-1]["status"] == "ok"
    steps = [r["step"] for r in by_kind(run_dir, "train")]
    assert steps == [1, 2, 3, 4, 5]
    assert [r["step"] for r in by_kind(run_dir, "eval")] == [0, 1, 2, 3, 4, 5]
