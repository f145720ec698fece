"""SFT end to end on a tiny model: records, exact token / FLOP counts, checkpoints, kill + resume, bad input.

One configuration serves every test: 16 training problems and a batch of 16 (two micro-batches of 8),
so every optimizer step trains on the whole set once and the expected cumulative tokens and FLOPs
can be computed independently from the rows.
"""

import math
import re
import subprocess
import sys
import time

import pytest
import torch

from retu.cli import main
from retu.config import load_config
from retu.engine.callbacks import ComputeCounter, TrainingDiverged
from retu.engine.checkpoints import checkpoint_dir, latest_checkpoint, list_checkpoints, read_state, staging_dir, step_of
from retu.engine.datasets import load_problem_sets, sft_dataset
from retu.engine.models import build_tiny_model, load_model
from retu.engine.sft import run_sft
from retu.flops import load_shape, training_flops
from retu.metrics import read_records

pytestmark = pytest.mark.integration

CONFIG = """\
kind: sft
model: {name_or_path: "tiny:1m"}
data: {arith_n_train: 16, arith_n_val: 8, arith_n_eval: 8, arith_train_steps: [1, 2], arith_eval_steps: [1, 2]}
optim: {lr: 2.0e-3, batch_size: 16, grad_accum: 2, max_steps: 12, warmup_ratio: 0.1, schedule: cosine}
sft: {val_every: 3}
eval: {every: 0, max_new_tokens: 24, batch_size: 8}
log: {log_every: 2, run_dir: unused}
"""
MAX_STEPS, VAL_EVERY = 12, 3


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "sft.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config_path, tmp_path_factory):
    """One uninterrupted run, in this process."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    run_sft(load_config(config_path, [f"log.run_dir={run_dir}"]), progress=False)
    return run_dir


def _by_kind(run_dir, kind):
    return [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == kind]


def _steps_strictly_increase(run_dir):
    for kind in ("train", "eval", "phase"):
        steps = [r["step"] for r in _by_kind(run_dir, kind)]
        assert steps == sorted(set(steps)), f"{kind} steps repeat or go back: {steps}"


def test_records_count_tokens_and_flops_exactly(reference, config_path):
    cfg = load_config(config_path)
    model, tokenizer = build_tiny_model("1m")
    rows = load_problem_sets(cfg.data, require_solution=True).train
    lens = [len(tokenizer(tokenizer.apply_chat_template(m, tokenize=False), add_special_tokens=False)["input_ids"])
            for m in sft_dataset(rows, tokenizer)["messages"]]
    per_step_flops = training_flops(load_shape(model.config), lens)
    train = _by_kind(reference, "train")
    assert [r["step"] for r in train] == [2, 3, 4, 6, 8, 9, 10, 12]  # log_every 2, plus every validation step
    for rec in train:
        assert rec["tokens"] == rec["step"] * sum(lens)
        assert rec["flops"] == pytest.approx(rec["step"] * per_step_flops, rel=1e-12)
        assert set(rec["metrics"]) >= {"loss/sft", "optim/lr", "optim/grad_norm", "perf/tokens_per_s"}
    assert train[-1]["metrics"]["loss/sft"] < train[0]["metrics"]["loss/sft"]
    # Cosine with 10% warm-up (2 of 12 steps); the logged rate is the one the step used.
    assert train[0]["metrics"]["optim/lr"] == pytest.approx(1e-3)
    assert train[-1]["metrics"]["optim/lr"] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))


def test_validation_phase_and_final_records(reference):
    evals = _by_kind(reference, "eval")
    assert [r["step"] for r in evals] == [0, 3, 6, 9, 12]
    assert all(r["metrics"]["loss/val"] > 0 for r in evals)
    assert evals[0]["tokens"] == 0 and evals[-1]["tokens"] == _by_kind(reference, "train")[-1]["tokens"]
    assert "eval/overall" in evals[0]["metrics"] and "eval/overall" in evals[-1]["metrics"]
    assert "eval/overall" not in evals[1]["metrics"]  # eval.every 0: accuracy at the start and the end only
    phases = _by_kind(reference, "phase")
    assert [p["step"] for p in phases] == [0, 3, 6, 9, 12] and phases[0]["phase"] == "Adaptive"
    assert all(p["phase"] in ("Adaptive", "Stable", "Mild", "Severe") for p in phases)
    end = _by_kind(reference, "run_end")[-1]
    best = min(evals, key=lambda r: r["metrics"]["loss/val"])
    assert (end["status"], end["step"], end["step_min"]) == ("ok", MAX_STEPS, best["step"])


def test_checkpoints_are_complete_and_loadable(reference):
    ckpts = list_checkpoints(reference)
    assert [step_of(p) for p in ckpts] == [3, 6, 9, 12]
    state = read_state(ckpts[-1])
    assert state["done"] is True and state["tokens"] == _by_kind(reference, "train")[-1]["tokens"]
    model, tokenizer = load_model(ckpts[-1])
    assert model.config.num_hidden_layers == 4 and tokenizer("7+5")["input_ids"] == [58, 46, 56]
    assert torch.isfinite(model(input_ids=torch.tensor([[58, 46, 56]])).logits).all()
    assert not list(staging_dir(reference).glob("checkpoint-*"))  # every save was finalised
    # Weights are safetensors (no pickle); the .pt / .pth files are the Trainer's optimizer, scheduler and
    # RNG states, which transformers loads with weights_only=True (tests/unit/test_no_code_runs.py).
    files = {f.name for f in ckpts[-1].iterdir()}
    assert "model.safetensors" in files and not files & {"pytorch_model.bin", "training_args.bin"}
    assert {f for f in files if f.endswith((".pt", ".pth", ".bin"))} <= {"optimizer.pt", "scheduler.pt", "rng_state.pth"}


def test_rerunning_a_finished_run_trains_nothing(reference, config_path):
    before = [r for r in read_records(reference / "metrics.jsonl") if r["kind"] in ("train", "eval", "phase")]
    run_sft(load_config(config_path, [f"log.run_dir={reference}"]), progress=False)
    after = [r for r in read_records(reference / "metrics.jsonl") if r["kind"] in ("train", "eval", "phase")]
    assert after == before
    assert _by_kind(reference, "run_end")[-1]["status"] == "ok"


def _retu_sft(config_path, run_dir):
    return [sys.executable, "-m", "retu", "sft", str(config_path), "--run-dir", str(run_dir), "--no-progress"]


def test_kill_and_resume_continue_exactly(reference, config_path, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_retu_sft(config_path, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(list_checkpoints(run_dir)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    killed_at = step_of(latest_checkpoint(run_dir))
    assert killed_at < MAX_STEPS, "the run finished before the kill; nothing was resumed"
    done = subprocess.run(_retu_sft(config_path, run_dir), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "switch to RL at step" in done.stdout
    _steps_strictly_increase(run_dir)
    starts = _by_kind(run_dir, "run_start")
    assert starts[-1]["resume_step"] == killed_at
    assert starts[-1]["tokens"] == read_state(checkpoint_dir(run_dir, killed_at))["tokens"]
    for kind in ("train", "eval"):  # resumed exactly: same numbers as the uninterrupted run
        got, want = _by_kind(run_dir, kind), _by_kind(reference, kind)
        assert [(r["step"], r["tokens"]) for r in got] == [(r["step"], r["tokens"]) for r in want]
        for g, w in zip(got, want):
            for name in ("loss/sft", "loss/val", "optim/grad_norm"):
                if name in w["metrics"]:
                    assert g["metrics"][name] == pytest.approx(w["metrics"][name], rel=1e-5), (kind, g["step"], name)


def test_stop_on_saturation_checkpoints_and_evaluates_the_last_model(config_path, tmp_path):
    # A 50% band makes the second validation loss (step 3) count as saturated (patience 1).
    cfg = load_config(config_path, [f"log.run_dir={tmp_path}", "sft.stop_on_saturation=true", "sft.patience=1",
                                    "sft.delta_stable=0.5", "sft.delta_severe=0.9"])
    run_sft(cfg, progress=False)
    assert [step_of(p) for p in list_checkpoints(tmp_path)] == [VAL_EVERY]
    assert read_state(checkpoint_dir(tmp_path, VAL_EVERY))["done"] is True
    assert [e["event"] for e in _by_kind(tmp_path, "event")] == ["stop_on_saturation"]
    assert "eval/overall" in _by_kind(tmp_path, "eval")[-1]["metrics"]
    assert _by_kind(tmp_path, "phase")[-1]["saturated"] is True
    assert _by_kind(tmp_path, "run_end")[-1]["step"] == VAL_EVERY


def test_non_finite_loss_stops_the_run_naming_the_step(config_path, tmp_path):
    cfg = load_config(config_path, [f"log.run_dir={tmp_path}", "optim.lr=1e12", "optim.grad_clip=0",
                                    "optim.schedule=constant", "optim.warmup_ratio=0", "log.log_every=1"])
    with pytest.raises(TrainingDiverged, match=r"non-finite .* at step \d+; the run stopped"):
        run_sft(cfg, progress=False)
    end = _by_kind(tmp_path, "run_end")[-1]
    assert end["status"] == "failed" and "TrainingDiverged" in end["error"]
    bad = [r for r in _by_kind(tmp_path, "train") if r["metrics"]["loss/sft"] is None]
    assert len(bad) == 1 and bad[0]["step"] == end["step"] < VAL_EVERY
    assert list_checkpoints(tmp_path) == []


def test_compute_counter_counts_training_passes_only():
    model, _ = build_tiny_model("1m")
    counter = ComputeCounter(model, tokens=10, flops=5.0)
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
    mask = (ids != 0).long()
    model.train()
    model(input_ids=ids, attention_mask=mask)
    assert counter.totals() == (10 + 5, 5.0 + training_flops(load_shape(model.config), [3, 2]))
    model.eval()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    counter.remove()
    model.train()
    model(input_ids=ids, attention_mask=mask)
    assert counter.tokens == 15


@pytest.mark.parametrize("case, message", [
    ("row", r"bad\.jsonl:2: missing field 'solution'"),
    ("key", r"unknown key 'optim\.lrr'; valid keys: optim\.lr"),
    ("model", r"notamodel: not a model directory \(no config\.json\)"),
])
def test_bad_input_exits_2_with_one_line_before_anything_is_written(config_path, tmp_path, monkeypatch, capsys,
                                                                     case, message):
    (tmp_path / "bad.jsonl").write_text('{"problem": "Compute 1+1.", "answer": "2", "solution": "1+1=2"}\n'
                                        '{"problem": "Compute 1+2.", "answer": "3"}\n')
    (tmp_path / "notamodel").mkdir()
    override = {"row": [f"data.train={tmp_path / 'bad.jsonl'}", "data.val=arith"], "key": ["optim.lrr=1"],
                "model": [f"model.name_or_path={tmp_path / 'notamodel'}"]}[case]
    run_dir = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["retu", *_retu_sft(config_path, run_dir)[3:], *override])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err
    assert err.startswith("retu: error: ")
    assert re.search(message, err), err
    assert not run_dir.exists()


def test_a_run_dir_of_another_config_is_refused_untouched(reference, config_path, monkeypatch, capsys):
    before = (reference / "metrics.jsonl").read_text(), (reference / "config.yaml").read_text()
    monkeypatch.setattr(sys, "argv", ["retu", *_retu_sft(config_path, reference)[3:], "optim.lr=1e-3"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "already holds a run with a different config (optim.lr: 0.002 -> 0.001)" in capsys.readouterr().err
    assert ((reference / "metrics.jsonl").read_text(), (reference / "config.yaml").read_text()) == before
