"""JsonlLogger (schema, null for non-finite, rewind) and the readers of every log format."""

import json

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.metrics import JsonlLogger, read_records, read_series


def test_logger_schema_null_and_event(tmp_path):
    log = JsonlLogger(tmp_path / "metrics.jsonl", run_id="r0")
    log.log("train", step=3, tokens=1200, flops=4.5e12, metrics={"loss/total": 0.5, "loss/val": float("inf")})
    recs = read_records(tmp_path / "metrics.jsonl")
    assert [r["kind"] for r in recs] == ["train", "event"]
    assert recs[0]["metrics"] == {"loss/total": 0.5, "loss/val": None}
    assert {k: recs[0][k] for k in ("v", "run_id", "step", "tokens", "flops")} == \
        {"v": 1, "run_id": "r0", "step": 3, "tokens": 1200, "flops": 4.5e12}
    assert recs[1]["event"] == "non_finite" and recs[1]["names"] == ["loss/val"]
    with pytest.raises(ValueError, match="unknown record kind"):
        log.log("bogus")


def test_rewind_drops_records_after_checkpoint(tmp_path):
    log = JsonlLogger(tmp_path / "m.jsonl", run_id="r")
    log.log("run_start", step=0)
    for s in range(1, 6):
        log.log("train", step=s, metrics={"loss/total": 1.0 / s})
    log.log("run_end", step=5, status="interrupted")
    assert log.rewind(3) == 3  # steps 4, 5 and the run_end
    assert [r["step"] for r in log.records()] == [0, 1, 2, 3]


def test_torn_last_line_ignored_other_bad_lines_named(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"kind": "train", "step": 1, "metrics": {"loss/val": 0.5}}\n{"kind": "tra')
    assert len(read_records(p)) == 1
    p.write_text('{"kind": "train"}\nnot json\n{"kind": "train"}\n')
    with pytest.raises(RetuInputError, match=r"m\.jsonl:2: not valid JSON"):
        read_records(p)


def test_read_metrics_jsonl_val_loss_drops_nulls(tmp_path):
    log = JsonlLogger(tmp_path / "metrics.jsonl", run_id="r")
    for step, v in [(10, 0.9), (20, float("nan")), (30, 0.7)]:
        log.log("eval", step=step, tokens=step * 100, flops=step * 1e9, metrics={"loss/val": v})
    s = read_series(tmp_path)  # the run directory
    assert s.name == "loss/val" and list(s.step) == [10, 30] and list(s.value) == [0.9, 0.7]
    assert s.n_dropped == 1 and list(s.flops) == [1e10, 3e10]


def test_read_trainer_state(tmp_path):
    state = {"log_history": [{"step": 5, "loss": 2.0}, {"step": 10, "eval_loss": 1.5, "total_flos": 7.0},
                             {"step": 20, "eval_loss": 1.2, "total_flos": 9.0}]}
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    s = read_series(tmp_path / "trainer_state.json")
    assert s.name == "eval_loss" and list(s.step) == [10, 20] and list(s.value) == [1.5, 1.2]
    assert read_series(tmp_path / "trainer_state.json", "loss").value.tolist() == [2.0]


def test_read_csv_wandb_export(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("_step,eval/loss,train/loss\n0,,3.0\n100,1.25,2.0\n200,1.5,1.0\n")
    s = read_series(p)
    assert s.name == "eval/loss" and list(s.step) == [100, 200] and s.n_dropped == 1


def test_read_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for step, v in [(1, 0.8), (2, 0.6), (3, 0.65)]:
        w.add_scalar("eval/loss", v, step)
    w.close()
    s = read_series(tmp_path)
    assert list(s.step) == [1, 2, 3]
    np.testing.assert_allclose(s.value, [0.8, 0.6, 0.65], rtol=1e-6)


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(RetuInputError, match="missing.jsonl: file not found"):
        read_series(tmp_path / "missing.jsonl")
    (tmp_path / "s.json").write_text("{bad")
    with pytest.raises(RetuInputError, match=r"s.json:1: not valid JSON"):
        read_series(tmp_path / "s.json")
    (tmp_path / "t.json").write_text(json.dumps({"log_history": [{"step": 1, "loss": 1.0}]}))
    with pytest.raises(RetuInputError, match="t.json: no validation loss found"):
        read_series(tmp_path / "t.json")
    (tmp_path / "n.csv").write_text("step,eval_loss\n1,nan\n2,\n")
    with pytest.raises(RetuInputError, match="no finite values"):
        read_series(tmp_path / "n.csv")
