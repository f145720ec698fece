"""Checkpoints: complete-or-absent (marker written last, rename), newest complete, pruning."""

import json
import os
from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from retu.engine.checkpoints import (
    MARKER,
    CheckpointCallback,
    checkpoint_dir,
    clear_staging,
    finalize_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    read_state,
    staging_dir,
    step_of,
)
from retu.errors import RetuInputError


def _hf_save(run_dir, step, payload="w"):
    """What the HF Trainer leaves in the staging directory after a save."""
    src = staging_dir(run_dir) / f"checkpoint-{step}"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_text(payload)
    (src / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return src


def test_paths_and_step_of(tmp_path):
    assert checkpoint_dir(tmp_path, 40) == tmp_path / "checkpoints" / "step-40"
    assert step_of(checkpoint_dir(tmp_path, 40)) == 40
    with pytest.raises(RetuInputError, match="checkpoint-40: not a retu checkpoint directory"):
        step_of(tmp_path / "checkpoint-40")


def test_finalize_moves_the_save_and_writes_state_last(tmp_path):
    path = finalize_checkpoint(_hf_save(tmp_path, 10), tmp_path, 10, {"tokens": 123, "flops": 4.5e9})
    assert path == checkpoint_dir(tmp_path, 10)
    assert (path / "model.safetensors").read_text() == "w"
    assert read_state(path) == {"tokens": 123, "flops": 4.5e9, "step": 10}
    assert not (staging_dir(tmp_path) / "checkpoint-10").exists()
    assert latest_checkpoint(tmp_path) == path


def test_half_written_checkpoints_are_ignored(tmp_path):
    finalize_checkpoint(_hf_save(tmp_path, 10), tmp_path, 10, {})
    _hf_save(tmp_path, 20)  # killed before finalize: still in staging
    checkpoint_dir(tmp_path, 30).mkdir()  # a step dir without the marker (e.g. copied by hand, partial)
    assert list_checkpoints(tmp_path) == [checkpoint_dir(tmp_path, 10)]
    with pytest.raises(RetuInputError, match="no retu_state.json"):
        read_state(checkpoint_dir(tmp_path, 30))
    clear_staging(tmp_path)
    assert not staging_dir(tmp_path).exists()


def test_kill_before_rename_leaves_no_checkpoint(tmp_path, monkeypatch):
    src = _hf_save(tmp_path, 5)

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        finalize_checkpoint(src, tmp_path, 5, {})
    assert latest_checkpoint(tmp_path) is None
    assert (src / MARKER).exists()  # complete in staging, but invisible until renamed


def test_latest_is_numeric_not_lexical_and_replacing_a_step(tmp_path):
    for step in (9, 10, 100):
        finalize_checkpoint(_hf_save(tmp_path, step), tmp_path, step, {"n": step})
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 100)
    finalize_checkpoint(_hf_save(tmp_path, 100, payload="new"), tmp_path, 100, {"n": -1})
    assert (checkpoint_dir(tmp_path, 100) / "model.safetensors").read_text() == "new"
    assert read_state(checkpoint_dir(tmp_path, 100))["n"] == -1


def test_prune_keeps_newest(tmp_path):
    for step in (1, 2, 3):
        finalize_checkpoint(_hf_save(tmp_path, step), tmp_path, step, {})
    assert prune_checkpoints(tmp_path, 0) == []
    assert prune_checkpoints(tmp_path, 2) == [checkpoint_dir(tmp_path, 1)]
    assert [step_of(p) for p in list_checkpoints(tmp_path)] == [2, 3]


def test_callback_finalises_each_save_with_its_state(tmp_path):
    callback = CheckpointCallback(tmp_path, lambda state, control: {"done": control.should_training_stop}, keep=1)
    args = SimpleNamespace(output_dir=str(staging_dir(tmp_path)))
    for step in (4, 8):
        _hf_save(tmp_path, step)
        control = TrainerControl(should_training_stop=step == 8)
        callback.on_save(args, TrainerState(global_step=step), control)
    assert callback.saved == [checkpoint_dir(tmp_path, 4), checkpoint_dir(tmp_path, 8)]
    assert list_checkpoints(tmp_path) == [checkpoint_dir(tmp_path, 8)]
    assert read_state(checkpoint_dir(tmp_path, 8)) == {"done": True, "step": 8}


def test_callback_refuses_another_output_dir(tmp_path):
    callback = CheckpointCallback(tmp_path, lambda state, control: {})
    with pytest.raises(ValueError, match="output_dir must be"):
        callback.on_save(SimpleNamespace(output_dir=str(tmp_path / "elsewhere")), TrainerState(global_step=1),
                         TrainerControl())


def test_doctests():
    import doctest

    import retu.engine.checkpoints

    result = doctest.testmod(retu.engine.checkpoints)
    assert result.attempted > 0 and result.failed == 0


def test_recorded_eval_is_reused_only_for_the_same_evaluation(tmp_path):
    from retu.config import load_config, save_config, to_dict
    from retu.engine.checkpoints import recorded_eval
    from retu.metrics import JsonlLogger

    sft = load_config(None, ["kind=sft", f"log.run_dir={tmp_path}", "data.arith_n_eval=300", "data.arith_n_train=64"])
    save_config(sft, tmp_path / "config.yaml")
    log = JsonlLogger(tmp_path / "metrics.jsonl", run_id="sft")
    log.log("eval", step=50, metrics={"loss/val": 0.5})  # a validation without accuracy
    log.log("eval", step=100, metrics={"loss/val": 0.4, "eval/overall": 61.5, "eval/se": 2.8, "eval/n": 300})
    (tmp_path / "checkpoints" / "step-100").mkdir(parents=True)
    # An RL branch with another training set but the same evaluation reuses it (eval/* keys only).
    rl = load_config(None, ["kind=rl", "data.arith_n_eval=300", "data.arith_n_train=5000"])
    assert recorded_eval(tmp_path / "checkpoints" / "step-100", to_dict(rl)) == {
        "eval/overall": 61.5, "eval/se": 2.8, "eval/n": 300}
    # Another eval set, other sampling, a step without accuracy, or not a checkpoint: evaluate again.
    for other in (["data.arith_n_eval=200"], ["eval.temperature=0.7"], ["data.seed=1"]):
        assert recorded_eval(tmp_path / "checkpoints" / "step-100",
                             to_dict(load_config(None, ["kind=rl", "data.arith_n_eval=300", *other]))) is None
    assert recorded_eval(tmp_path / "checkpoints" / "step-50", to_dict(rl)) is None
    assert recorded_eval("base:1m", to_dict(rl)) is None
