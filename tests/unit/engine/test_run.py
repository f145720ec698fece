"""Run directories: fresh start, resume with rewind, config mismatch, run_start / run_end records."""

import dataclasses
import json
import math

import pytest

from retu.config import load_config
from retu.engine.checkpoints import finalize_checkpoint, staging_dir
from retu.engine.run import end_run, git_info, optim_args, seed_everything, speed_args, start_run
from retu.errors import RetuInputError
from retu.metrics import read_records


def _cfg(run_dir, *overrides):
    return load_config(overrides=[f"log.run_dir={run_dir}", *overrides])


def _save(run_dir, step, **state):
    src = staging_dir(run_dir) / f"checkpoint-{step}"
    src.mkdir(parents=True)
    finalize_checkpoint(src, run_dir, step, state)


def test_fresh_start_writes_config_and_run_start(tmp_path):
    run_dir = tmp_path / "r"
    ctx = start_run(_cfg(run_dir), curve={"branch": "base"})
    assert (ctx.run_dir, ctx.resume_from, ctx.resume_step, ctx.resume_state) == (run_dir, None, 0, {})
    assert load_config(run_dir / "config.yaml") == ctx.cfg
    (rec,) = read_records(run_dir / "metrics.jsonl")
    assert rec["kind"] == "run_start" and rec["run_id"] == "r" and rec["resume_step"] == 0
    assert rec["config"]["optim"]["lr"] == ctx.cfg.optim.lr and rec["curve"] == {"branch": "base"}
    assert set(rec["versions"]) >= {"torch", "transformers", "trl", "retu"} and rec["versions"]["retu"]
    assert rec["hardware"]["device"] == "cpu" and rec["hardware"]["threads"] >= 1
    assert rec["git"] is None or len(rec["git"]["sha"]) == 40


def test_resume_rewinds_to_the_latest_complete_checkpoint(tmp_path):
    run_dir = tmp_path / "r"
    ctx = start_run(_cfg(run_dir))
    for step in (10, 20, 30):
        ctx.logger.log("train", step=step, tokens=step * 100, flops=step * 1e9, metrics={"loss/sft": 1.0})
    _save(run_dir, 20, tokens=2000, flops=2e10)
    (staging_dir(run_dir) / "checkpoint-30").mkdir()  # a save killed half-way
    end_run(ctx, "interrupted", step=30)
    ctx2 = start_run(_cfg(run_dir))
    assert ctx2.resume_step == 20 and ctx2.resume_from.name == "step-20"
    assert ctx2.resume_state == {"tokens": 2000, "flops": 2e10, "step": 20}
    assert not staging_dir(run_dir).exists()
    recs = read_records(run_dir / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in recs] == [("run_start", 0), ("train", 10), ("train", 20),
                                                      ("run_start", 20)]
    assert recs[-1]["tokens"] == 2000 and recs[-1]["resume_from"].endswith("step-20")


def test_restart_without_checkpoint_starts_over(tmp_path):
    run_dir = tmp_path / "r"
    ctx = start_run(_cfg(run_dir))
    ctx.logger.log("eval", step=0, metrics={"loss/val": 2.0})
    ctx.logger.log("train", step=5, metrics={"loss/sft": 1.0})
    start_run(_cfg(run_dir))
    assert [(r["kind"], r["step"]) for r in read_records(run_dir / "metrics.jsonl")] == [("run_start", 0)]


def test_config_mismatch_is_refused_and_nothing_overwritten(tmp_path):
    run_dir = tmp_path / "r"
    start_run(_cfg(run_dir))
    before = (run_dir / "config.yaml").read_text(), (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(RetuInputError, match=r"different config \(optim\.lr: 0\.002 -> 0\.001\)") as err:
        start_run(_cfg(run_dir, "optim.lr=1e-3"))
    assert "\n" not in str(err.value)
    assert ((run_dir / "config.yaml").read_text(), (run_dir / "metrics.jsonl").read_text()) == before


def test_metrics_without_config_are_refused(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(RetuInputError, match="no config.yaml; not a retu run directory"):
        start_run(_cfg(tmp_path))


def test_every_report_to_the_config_allows_has_a_mirror():
    from retu.config import REPORT_TO
    from retu.engine.run import MIRRORS

    assert tuple(MIRRORS) == REPORT_TO == ("none", "tensorboard", "wandb")


def test_tensorboard_mirror_writes_events(tmp_path):
    ctx = start_run(_cfg(tmp_path / "r", "log.report_to=tensorboard"))
    ctx.logger.log("eval", step=3, metrics={"loss/val": 1.5})
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents*"))


def test_end_run_records_status(tmp_path):
    ctx = start_run(_cfg(tmp_path / "r"))
    end_run(ctx, "ok", step=7, tokens=10, flops=1e3, final_val_loss=0.5)
    rec = read_records(tmp_path / "r" / "metrics.jsonl")[-1]
    assert (rec["kind"], rec["status"], rec["step"], rec["final_val_loss"]) == ("run_end", "ok", 7, 0.5)
    with pytest.raises(ValueError, match="status"):
        end_run(ctx, "done")


def test_git_info_outside_a_repo_is_none(tmp_path):
    assert git_info(tmp_path) is None


def test_seed_everything_repeats_draws():
    import random

    import torch

    seed_everything(3)
    a = (random.random(), torch.rand(2).tolist())
    seed_everything(3)
    assert (random.random(), torch.rand(2).tolist()) == a


def test_config_is_frozen_dataclass_equal_after_round_trip(tmp_path):
    cfg = _cfg(tmp_path / "r", "data.arith_train_steps=[2, 3]")
    start_run(cfg)
    assert start_run(dataclasses.replace(cfg)).cfg == cfg  # identical config resumes
    assert json.loads(json.dumps(read_records(tmp_path / "r" / "metrics.jsonl")[0]["config"]))["data"][
        "arith_train_steps"] == [2, 3]


def test_secondary_processes_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    ctx = start_run(_cfg(tmp_path / "r"))
    end_run(ctx, "ok")
    assert ctx.resume_from is None and not list((tmp_path / "r").iterdir())  # the logger made the empty dir


@pytest.mark.parametrize("extra, at", [
    ([], {10: 1.0, 55: 0.5 * (1 + math.cos(math.pi * 45 / 90)), 100: 0.0}),
    (["optim.min_lr_ratio=0.25"], {10: 1.0, 100: 0.25}),
    (["optim.min_lr_ratio=0.25", "optim.decay_steps=40"], {10: 1.0, 30: 0.625, 50: 0.25, 100: 0.25}),
])
def test_optim_args_schedules_reach_hf(extra, at):
    import torch
    from transformers import get_scheduler

    o = load_config(None, ["optim.schedule=cosine", "optim.warmup_ratio=0.1", "optim.max_steps=100", *extra]).optim
    args = optim_args(o)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args["learning_rate"])
    sched = get_scheduler(args["lr_scheduler_type"], opt, num_warmup_steps=10, num_training_steps=100,
                          scheduler_specific_kwargs=args["lr_scheduler_kwargs"])
    lrs = []
    for _ in range(101):
        lrs.append(opt.param_groups[0]["lr"] / o.lr)
        opt.step()
        sched.step()
    for step, share in at.items():
        assert lrs[step] == pytest.approx(share, abs=1e-6), step


def test_decay_steps_needs_cosine():
    with pytest.raises(RetuInputError, match="optim.decay_steps must be >= 0 and needs optim.schedule=cosine"):
        load_config(None, ["optim.decay_steps=10"])


# ---------------------------------------------------------------------------------------------------
# Throughput switches


def test_speed_args_default_checkpointing_is_todays_sft_on_gpu_only():
    sft, rl = load_config(), load_config(overrides=["kind=rl"])
    assert [speed_args(c, cuda=cuda)["activation_checkpointing"] for c in (sft, rl) for cuda in (False, True)] == \
        [False, True, False, False]
    forced = load_config(overrides=["optim.gradient_checkpointing=true", "optim.torch_compile=true"])
    assert speed_args(forced, cuda=False) == {"activation_checkpointing": True, "torch_compile": True,
                                              "use_liger_kernel": False}
    assert speed_args(load_config(overrides=["optim.gradient_checkpointing=false"]), cuda=True)[
        "activation_checkpointing"] is False


@pytest.mark.parametrize("override, cuda, match", [
    ("model.attn_implementation=flash_attention_2", False,
     "model.attn_implementation: flash_attn kernels need a CUDA GPU; set model.attn_implementation=sdpa"),
    ("optim.liger_kernel=true", False, "optim.liger_kernel: liger_kernel kernels need a CUDA GPU; set "
     "optim.liger_kernel=false"),
    ("model.attn_implementation=flash_attention_2", True,
     "model.attn_implementation: the flash_attn package is not installed; pip install flash-attn, or set "
     "model.attn_implementation=sdpa"),
    ("optim.liger_kernel=true", True, r"the liger_kernel package is not installed; pip install -e '\.\[gpu\]', or "
     "set optim.liger_kernel=false"),
])
def test_speed_args_refuse_kernels_that_cannot_run_here(monkeypatch, override, cuda, match):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("flash_attn", "liger_kernel") else find_spec(name, *a))
    with pytest.raises(RetuInputError, match=match):
        speed_args(load_config(overrides=[override]), cuda=cuda)


def test_attn_implementation_must_be_known():
    assert load_config(overrides=["model.attn_implementation=eager"]).model.attn_implementation == "eager"
    with pytest.raises(RetuInputError, match="model.attn_implementation must be sdpa, eager or flash_attention_2, "
                       "got 'flash'"):
        load_config(overrides=["model.attn_implementation=flash"])


def test_sft_args_carry_the_switches_and_keep_todays_cpu_defaults(tmp_path, monkeypatch):
    import torch

    from retu.engine.sft import check_sft_inputs, sft_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU defaults, on any machine

    default = sft_args(_cfg(tmp_path / "a"), tmp_path / "a")
    assert (default.activation_checkpointing, default.torch_compile, default.use_liger_kernel, default.padding_free,
            default.packing) == (False, False, False, False, False)
    on = sft_args(_cfg(tmp_path / "b", "optim.gradient_checkpointing=true", "optim.torch_compile=true"), tmp_path / "b")
    assert (on.activation_checkpointing, on.torch_compile) == (True, True)
    # Refused with the inputs, before the run directory or the model is touched.
    with pytest.raises(RetuInputError, match="model.attn_implementation: flash_attn kernels need a CUDA GPU"):
        check_sft_inputs(_cfg(tmp_path / "c", "model.attn_implementation=flash_attention_2"))
    assert not (tmp_path / "c").exists()


def test_sft_keeps_only_the_process_split_of_the_batch(tmp_path, monkeypatch):
    from retu.engine.sft import check_sft_inputs

    cfg = _cfg(tmp_path / "run", "optim.batch_size=6", "optim.grad_accum=2")  # the config's rule: 6 = 3 x 2
    monkeypatch.setenv("WORLD_SIZE", "2")  # two processes need 6 = micro-batch x 2 x 2
    with pytest.raises(RetuInputError) as err:
        check_sft_inputs(cfg)
    assert str(err.value) == "optim.batch_size (6) must be divisible by optim.grad_accum x processes (2 x 2)"
    assert not (tmp_path / "run").exists()
