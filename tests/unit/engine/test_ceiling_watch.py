"""The live ceiling of a running RL curve and the pruning test (retu.engine.ceiling_watch)."""

import numpy as np
import pytest

from retu.engine.ceiling_watch import CEILING_KEYS, CeilingWatch, final_interval, past_points, sibling_prior
from retu.errors import RetuInputError
from retu.flops import EFLOP
from retu.metrics import JsonlLogger
from retu.scaling.curves import read_curve_run
from retu.scaling.fit import fit_ceiling
from retu.scaling.forms import sigmoid_power

X = np.linspace(0.0, 2.0, 11)  # EFLOPs since the branch point, step 0 first
Y = sigmoid_power(X, 60.0, 80.0, 0.2, 2.0) + np.random.default_rng(0).normal(0.0, 0.3, X.size)
Y[0] = 60.0


def fed(watch: CeilingWatch, n: int) -> list[dict]:
    """Feed the first n evaluations (FLOPs offset by 3e17, as a run that resumed its ledger)."""
    return [watch.add(3e17 + x * EFLOP, y) for x, y in zip(X[:n], Y[:n], strict=True)]


def test_no_estimate_until_five_evaluations_after_the_branch_point():
    out = fed(CeilingWatch(), 6)
    assert out[:5] == [{}] * 5 and set(out[5]) == set(CEILING_KEYS)
    lo, hi = out[5]["ceiling/lo"], out[5]["ceiling/hi"]
    assert lo <= hi and (out[5]["ceiling/A"] is None or lo <= out[5]["ceiling/A"] <= hi)


def test_the_estimate_on_the_whole_curve_holds_the_true_ceiling():
    watch = CeilingWatch()
    last = fed(watch, X.size)[-1]
    assert last["ceiling/lo"] <= 80.0 <= last["ceiling/hi"]
    assert watch.status().startswith("ceiling ") and "[" in watch.status()
    assert [p[0] for p in watch.points] == pytest.approx(3e17 + X * EFLOP)


def test_a_missing_accuracy_adds_no_point():
    watch = CeilingWatch()
    assert watch.add(0.0, 60.0) == {} and watch.add(1e17, None) == {} and watch.add(2e17, float("nan")) == {}
    assert watch.points == [(0.0, 60.0)] and watch.status() == ""


def test_hopeless_only_when_the_interval_lies_below_the_best_rivals_lower_bound():
    watch = CeilingWatch()
    fed(watch, X.size)
    lo, hi = watch.live.interval
    assert not CeilingWatch().hopeless()  # no estimate, no rivals
    assert not watch.hopeless()  # no rivals: never pruned
    watch.rivals = {"a": (hi + 0.5, 100.0), "b": (lo - 5.0, hi)}
    assert watch.hopeless()
    watch.rivals = {"a": (hi - 0.1, 100.0)}  # the intervals overlap: keep going
    assert not watch.hopeless()


def test_evaluations_and_final_interval_are_read_back_from_a_run(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert past_points(path, 10) == [] and final_interval(path) is None
    log = JsonlLogger(path, run_id="r")
    log.log("train", step=5, flops=5e16, metrics={"loss/total": 0.1})
    for step, acc, ceiling in ((0, 60.0, {}), (5, 62.0, {}), (10, 64.0, {"ceiling/A": None, "ceiling/lo": 70.0,
                                                                          "ceiling/hi": 90.0}),
                               (15, 65.0, {"ceiling/A": 75.0, "ceiling/lo": 72.0, "ceiling/hi": 79.0})):
        log.log("eval", step=step, flops=step * 1e16, metrics={"eval/overall": acc, **ceiling})
    assert past_points(path, 10) == [(0.0, 60.0), (5e16, 62.0), (1e17, 64.0)]
    assert final_interval(path) == (72.0, 79.0)


def _finished_run(path, ys) -> None:
    log = JsonlLogger(path, run_id=path.parent.name)
    log.log("run_start", step=0, curve={"kind": "rl", "scene": "s", "sft_step": 100, "sft_eflops": 1.0})
    for i, y in enumerate(ys):
        log.log("eval", step=5 * i, flops=float(X[i]) * EFLOP, metrics={"eval/overall": float(y)})


def test_a_collapsed_sibling_lends_no_shape_and_stops_nothing(tmp_path):
    good = []
    for i, top in enumerate((80.0, 82.0)):
        ys = sigmoid_power(X, 60.0, top, 0.2, 2.0) + np.random.default_rng(i).normal(0.0, 0.3, X.size)
        ys[0] = 60.0
        good.append(tmp_path / f"g{i}" / "metrics.jsonl")
        good[-1].parent.mkdir()
        _finished_run(good[-1], ys)
    collapsed = tmp_path / "c" / "metrics.jsonl"
    collapsed.parent.mkdir()
    _finished_run(collapsed, [29.0, 26.0, 17.0, 19.5, 16.5, 16.25, 15.5, 11.75, 10.25, 9.75, 10.5])
    with pytest.raises(RetuInputError, match="before the collapse"):  # what the sibling's own fit says
        fit_ceiling(*(lambda c: (c.x, c.y))(read_curve_run(collapsed)), p_start=29.0)
    assert sibling_prior([collapsed]) is None
    assert sibling_prior([good[0], collapsed]) is None  # one usable fit is not a prior
    assert sibling_prior([*good, collapsed]).n_curves == 2
