"""log.profile_step runs one optimizer step under torch.profiler (retu.engine.profiling): a `profile`
event in metrics.jsonl and torch's table beside it, for SFT and RL, without changing what is trained."""

import pytest
import torch
from rl_setup import make_config, warm_model  # noqa: F401 (warm_model is a fixture)

from retu.config import load_config
from retu.engine.profiling import Capture, summarize
from retu.engine.rl import run_rl
from retu.engine.sft import run_sft
from retu.metrics import read_records

pytestmark = pytest.mark.integration

SFT = ["model.name_or_path=tiny:1m", "data.arith_n_train=16", "data.arith_n_val=8", "data.arith_n_eval=8",
       "optim.lr=2e-3", "optim.batch_size=8", "optim.grad_accum=2", "optim.max_steps=3", "sft.val_every=3",
       "eval.every=0", "eval.max_new_tokens=2", "log.log_every=1"]


def _profile_event(run_dir) -> dict:
    events = [r for r in read_records(run_dir / "metrics.jsonl") if r.get("event") == "profile"]
    assert len(events) == 1, events
    return events[0]


def _check_summary(p: dict) -> None:
    """What every profile summary holds on CPU: ops by self time, largest first, shares of busy time."""
    assert p["device"] == "cpu" and p["wall_s"] > 0 and p["busy_s"] > 0
    assert p["busy_share"] == pytest.approx(p["busy_s"] / p["wall_s"])
    seconds = [e["s"] for e in p["top"]]
    assert 3 <= len(seconds) <= 12 and seconds == sorted(seconds, reverse=True)
    assert sum(e["share"] for e in p["top"]) <= 1 + 1e-9
    assert all(e["calls"] >= 1 and e["name"] for e in p["top"])


def test_sft_profiles_one_step_and_trains_the_same(tmp_path):
    plain, profiled = tmp_path / "plain", tmp_path / "profiled"
    run_sft(load_config(None, [*SFT, f"log.run_dir={plain}"]), progress=False)
    run_sft(load_config(None, [*SFT, f"log.run_dir={profiled}", "log.profile_step=2"]), progress=False)
    event = _profile_event(profiled)
    assert event["step"] == 2
    _check_summary(event)
    # a training step's time is in matrix products; the table beside the event ranks the same ops
    assert any(e["name"] in ("aten::mm", "aten::addmm", "aten::bmm") for e in event["top"]), event["top"]
    table = (profiled / "profile-step2.txt").read_text()
    assert event["top"][0]["name"] in table and "Self CPU" in table
    # the profiler only watches: the same losses, gradient norms, tokens and FLOPs at every step
    def trained(run_dir):
        return [(r["step"], r["tokens"], r["flops"], r["metrics"].get("loss/sft"), r["metrics"].get("optim/grad_norm"),
                 r["metrics"].get("loss/val")) for r in read_records(run_dir / "metrics.jsonl")
                if r["kind"] in ("train", "eval")]
    assert trained(profiled) == trained(plain)
    assert not list(plain.glob("profile-step*.txt"))


@pytest.mark.parametrize("where", ["start", "stop"])
def test_a_failing_profiler_costs_the_profile_not_the_run(tmp_path, monkeypatch, capsys, where):
    def broken(self):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED\nmore detail")

    monkeypatch.setattr(Capture, where, broken)
    run_sft(load_config(None, [*SFT, f"log.run_dir={tmp_path}", "log.profile_step=2"]), progress=False)
    records = read_records(tmp_path / "metrics.jsonl")
    assert records[-1]["kind"] == "run_end" and records[-1]["status"] == "ok" and records[-1]["step"] == 3
    failed = [r for r in records if r.get("event", "").startswith("profile")]
    assert [(r["event"], r["step"], r["error"]) for r in failed] == [
        ("profile_failed", 2, "RuntimeError: CUPTI_ERROR_NOT_INITIALIZED")]
    assert "warning: log.profile_step 2: torch.profiler failed (RuntimeError: CUPTI_ERROR_NOT_INITIALIZED); " \
           "training goes on unprofiled" in capsys.readouterr().err
    assert not list(tmp_path.glob("profile-step*.txt"))


def test_rl_profiles_the_step_it_is_told(tmp_path, warm_model):
    path = make_config(tmp_path, warm_model, optim={"lr": 1e-3, "batch_size": 4, "max_steps": 2},
                       log={"run_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 2, "profile_step": 2})
    run_rl(load_config(path), progress=False)
    event = _profile_event(tmp_path / "run")
    assert event["step"] == 2
    _check_summary(event)
    assert (tmp_path / "run" / "profile-step2.txt").is_file()


def test_summarize_ranks_what_took_the_time():
    capture = Capture()
    a = torch.randn(256, 256)
    capture.start()
    for _ in range(20):
        a = torch.tanh(a @ a)
    summary, table = capture.stop()
    _check_summary(summary)
    names = [e["name"] for e in summary["top"]]
    assert names[0] in ("aten::mm", "aten::tanh"), names  # the two ops that ran, by self time
    mm = next(e for e in summary["top"] if e["name"] == "aten::mm")
    assert mm["calls"] == 20
    assert summarize([], 1.0, cuda=False) == {"device": "cpu", "wall_s": 1.0, "busy_s": 0.0, "busy_share": 0.0,
                                              "top": []}
