"""Curve loading: the shared schema, retu runs, and errors that name the file."""

import json

import numpy as np
import pytest
from conftest import CURVES

from retu.errors import RetuInputError
from retu.metrics import JsonlLogger
from retu.scaling import load_curves


def _rl_curve(points, **extra):
    return {"scene": "s", "kind": "rl", "sft_step": 100, "sft_eflops": 3.5, "branch_start": {"overall": 50.0},
            "points": points, **extra}


def test_shared_rl_curve_fields():
    (c,) = load_curves([CURVES / "curves" / "rl" / "general" / "ckpt360.json"])
    assert (c.kind, c.scene, c.sft_step, c.sft_eflops) == ("rl", "general", 360, 34.92)
    assert c.p_start == pytest.approx(69.1496) and len(c.x) == 25 and c.x[0] == pytest.approx(2.96)


def test_nan_points_dropped_and_counted(tmp_path):
    pts = [{"eflops": 1.0, "overall": 55.0}, {"eflops": 2.0, "overall": None}, {"eflops": 3.0, "overall": 60.0}]
    (tmp_path / "c.json").write_text(json.dumps(_rl_curve(pts)))
    (c,) = load_curves([tmp_path / "c.json"])
    assert c.n_dropped == 1 and list(c.y) == [55.0, 60.0]


@pytest.mark.parametrize("content, match", [
    ("{oops", r"c\.json:1: not valid JSON"),
    (json.dumps({"kind": "other"}), "not a curve file"),
    (json.dumps(_rl_curve([{"eflops": 1.0}])), "point 0 has no 'overall'"),
    (json.dumps(_rl_curve([{"eflops": 1.0, "overall": "high"}])), "point 0 'overall' is not a number"),
    (json.dumps({**_rl_curve([{"eflops": 1.0, "overall": 1.0}]), "branch_start": {}}), "no 'branch_start.overall'"),
])
def test_bad_curve_files(tmp_path, content, match):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(RetuInputError, match=match):
        load_curves([tmp_path / "c.json"])


def test_directory_scan_skips_non_curve_json(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text(json.dumps(_rl_curve([{"eflops": 1.0, "overall": 1.0}])))
    (tmp_path / "references.json").write_text(json.dumps({"scenes": {}}))
    assert [c.scene for c in load_curves([tmp_path])] == ["s"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetuInputError, match="empty: no curve files"):
        load_curves([tmp_path / "empty"])
    with pytest.raises(RetuInputError, match="missing: file not found"):
        load_curves([tmp_path / "missing"])


def test_retu_run_metrics_jsonl(tmp_path):
    log = JsonlLogger(tmp_path / "metrics.jsonl", run_id="rl-from-100")
    log.log("run_start", step=0, curve={"kind": "rl", "scene": "arith", "sft_step": 100, "sft_eflops": 0.2})
    for step, acc in [(0, 40.0), (10, 50.0), (20, float("nan")), (30, 58.0)]:
        log.log("eval", step=step, flops=1e17 + step * 1e16, metrics={"eval/overall": acc})
    (c,) = load_curves([tmp_path / "metrics.jsonl"])
    assert (c.scene, c.sft_step, c.p_start, c.n_dropped) == ("arith", 100, 40.0, 1)
    np.testing.assert_allclose(c.x, [0.1, 0.3])  # EFLOPs since the first eval record
    assert list(c.y) == [50.0, 58.0]
