"""The pipeline report over seeds: evidence read from synthetic pipeline run directories, Findings,
the paradigm figure, and `retu report` on such a directory."""

import json

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.intervals import wilson_interval
from retu.metrics import JsonlLogger
from retu.report.findings import Finding, Untested
from retu.report.paradigms import Paradigm, mean_over_seeds
from retu.report.study import build_study, render_base_models, write_layout, write_study
from retu.scaling.forms import sigmoid_power

SFT_STEPS = [0, 100, 200, 300, 400, 500]
VAL = [1.2, 0.80, 0.70, 0.705, 0.75, 0.80]  # min at 200: 100 Adaptive, 200-300 Stable, 400 Mild, 500 Severe
SFT_ACC = [9.0, 30.0, 45.0, 50.0, 52.0, 53.0]
N_EVAL = 400


def se(p):
    return 100.0 * np.sqrt(p / 100 * (1 - p / 100) / N_EVAL)


def eval_metrics(p):
    return {"eval/overall": float(p), "eval/se": float(se(p)), "eval/n": N_EVAL}


def write_sft(root, name, *, acc=SFT_ACC, n_train=1000, levels=(1, 2, 3, 4, 5), model=None):
    log = JsonlLogger(root / name / "metrics.jsonl", run_id=name)
    log.log("run_start", step=0, config={"kind": "sft", "data": {"train": "arith", "arith_n_train": n_train,
                                                                  "arith_train_steps": list(levels)},
                                         **({} if model is None else {"model": model})})
    for step, v, a in zip(SFT_STEPS, VAL, acc, strict=True):
        log.log("eval", step=step, flops=step * 1e15, metrics={"loss/val": v, **eval_metrics(a)})


def write_rl(path, *, scene, sft_step, p0, ceiling, seed=0):
    log = JsonlLogger(path / "metrics.jsonl", run_id=path.name)
    log.log("run_start", step=0, config={"kind": "rl"},
            curve={"kind": "rl", "scene": scene, "sft_step": sft_step, "sft_eflops": sft_step * 1e-3})
    x = np.linspace(0.0, 3.0, 13)
    y = sigmoid_power(x, p0, ceiling, 0.6, 1.5) + np.random.default_rng(seed + sft_step).normal(0, 0.3, 13)
    y[0] = p0
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        log.log("eval", step=5 * i, flops=1e17 + xi * 1e18, metrics=eval_metrics(yi))


def write_seed(root, seed, *, switch_ceiling=75.0, adaptive_ceiling=40.0, base_ceiling=12.0, paradigms=(), model=None):
    sd = root / f"seed-{seed}"
    write_sft(sd, "arith", model=model)
    write_rl(sd / "rl" / "base", scene="base", sft_step=0, p0=9.0, ceiling=base_ceiling, seed=seed)
    write_rl(sd / "rl" / "arith-step100", scene="arith", sft_step=100, p0=30.0, ceiling=adaptive_ceiling, seed=seed)
    write_rl(sd / "rl" / "arith-step200", scene="arith", sft_step=200, p0=45.0, ceiling=switch_ceiling, seed=seed)
    for method, ceiling in paradigms:
        write_rl(sd / "paradigms" / method, scene="base", sft_step=0, p0=9.0, ceiling=ceiling, seed=seed)


def by_id(study):
    return {f.id: f for f in study.findings}


def test_one_seed_holds_and_the_report_opens_with_findings(tmp_path):
    write_layout(tmp_path, [0], ["arith"], [])
    write_seed(tmp_path, 0, model={"name_or_path": "base:1m", "seed": 3})
    study = build_study(tmp_path)
    (ev,) = study.evidence
    primary = ev.scenes[0]
    assert (primary.switch_step, primary.min_val_loss) == (200, 0.70)
    assert [(b.step, b.phase) for b in primary.branches] == [(100, "Adaptive"), (200, "Stable")]
    assert primary.sft_best.value == 53.0 and primary.sft_best.n == N_EVAL
    assert (primary.sft_best.lo, primary.sft_best.hi) == pytest.approx(wilson_interval(53.0, N_EVAL))
    f = by_id(study)
    assert [f[i].verdict for i in ("F1", "F2", "F3")] == ["holds", "holds", "holds"]
    assert f["F1"].numbers["best SFT-then-RL A_post"].value == pytest.approx(75.0, abs=1.0)
    assert isinstance(f["F4"], Untested) and isinstance(f["F8"], Untested)

    md = write_study(study, tmp_path / "report").read_text()
    assert md.splitlines()[2:5] == ["Base model: base:1m with model.seed 3.", "", "## Findings"]
    assert "| F1 | SFT-then-RL beats pure SFT" in md and "## Paradigms on one compute axis" in md
    assert "Each seed alone" not in md  # one seed: its verdicts are the table's
    assert "| 200 | 0.2 | 45.0 [40.2, 49.9] |" in md  # P_sft with its interval in the decomposition table
    sft = next(p for p in study.paradigms if p.method == "sft")
    assert sft.y_ci[:, -1] == pytest.approx(wilson_interval(53.0, N_EVAL))  # each point's own Wilson interval
    assert "| pure SFT | 0.5 | 9.0 [6.6, 12.2] | 53.0 [48.1, 57.8] | 53.0 [48.1, 57.8] |" in md
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [x["id"] for x in data["findings"]] == ["F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8"]
    assert data["findings"][0]["verdict"] == "holds" and "reason" in data["findings"][3]
    assert data["base_models"] == {"0": "base:1m with model.seed 3"}
    assert {p["method"] for p in data["paradigms"]} == {"sft", "rl", "sft_then_rl"}
    for name in ("paradigms.png", "phases.png", "fits.png", "decomposition.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"


def test_a_flat_paradigm_is_flagged_and_the_flag_explained_under_the_table(tmp_path):
    write_layout(tmp_path, [0], ["arith"], [])
    write_seed(tmp_path, 0)
    base = tmp_path / "seed-0" / "rl" / "base"
    (base / "metrics.jsonl").unlink()
    log = JsonlLogger(base / "metrics.jsonl", run_id="base")
    log.log("run_start", step=0, config={"kind": "rl"}, curve={"kind": "rl", "scene": "base", "sft_step": 0,
                                                            "sft_eflops": 0.0})
    for i, y in enumerate([9.0, 8.5, 9.5, 9.0, 8.5, 10.0, 9.0, 8.5, 9.5]):  # flat: no shape to fit
        log.log("eval", step=5 * i, flops=1e17 + i * 2e17, metrics=eval_metrics(y))
    lines = write_study(build_study(tmp_path), tmp_path / "report").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| pure") or line.startswith("| SFT-then-RL")]
    assert [r.split(" | ")[0] for r in rows] == ["| pure SFT", "| pure RL", "| SFT-then-RL (switch)"]
    assert rows[1].endswith("| at bound (B=10, gain at end=1) |") and rows[2].endswith("|  |"), rows
    legend = lines[lines.index(rows[2]) + 2]
    assert legend.startswith("Flags: at bound = the fit left a parameter on a bound") and "collapsed" not in legend


def test_fails_and_inconclusive_are_reported_as_measured(tmp_path):
    write_layout(tmp_path, [0], ["arith"], [])
    # RL from the switch ends below pure SFT's best (53): F1 fails; Adaptive close to Stable: F3 overlaps.
    write_seed(tmp_path, 0, switch_ceiling=46.0, adaptive_ceiling=46.5)
    f = by_id(build_study(tmp_path))
    assert f["F1"].verdict == "fails"
    assert f["F3"].verdict == "inconclusive"
    assert f["F2"].verdict == "holds"


def one_seed_with_adaptive_branch(root, accuracies, every):
    """One seed's runs whose Adaptive branch (SFT step 100) evaluated `accuracies` every `every` steps."""
    write_layout(root, [0], ["arith"], [])
    write_seed(root, 0)
    adaptive = root / "seed-0" / "rl" / "arith-step100"
    (adaptive / "metrics.jsonl").unlink()
    log = JsonlLogger(adaptive / "metrics.jsonl", run_id=adaptive.name)
    log.log("run_start", step=0, config={"kind": "rl"},
            curve={"kind": "rl", "scene": "arith", "sft_step": 100, "sft_eflops": 0.1})
    for i, y in enumerate(accuracies):
        log.log("eval", step=every * i, flops=1e17 + i * 1e17, metrics=eval_metrics(y))
    return build_study(root)


def test_a_branch_that_collapsed_before_a_fit_enters_with_its_best_checkpoint(tmp_path):
    # As measured, seed 0.
    study = one_seed_with_adaptive_branch(tmp_path, [29.0, 26.0, 17.0, 19.5, 16.5, 16.25, 15.5, 11.75, 10.25], 6)
    adaptive_branch = next(b for b in study.evidence[0].scenes[0].branches if b.step == 100)
    assert adaptive_branch.phase == "Adaptive" and adaptive_branch.ceiling.value == 29.0
    assert (adaptive_branch.ceiling.lo, adaptive_branch.ceiling.hi) == pytest.approx(wilson_interval(29.0, N_EVAL))
    f3 = by_id(study)["F3"]
    assert f3.verdict == "holds" and "collapsed, best checkpoint" in f3.numbers["best Adaptive A_post"].text()


def test_a_collapsed_fit_without_an_interval_enters_with_its_best_checkpoint(tmp_path):
    # As measured (seed 1 of the main job at 4793130): the fit is made, says collapsed, and has no interval.
    study = one_seed_with_adaptive_branch(tmp_path, [48.25, 37.25, 41.75, 42.25, 44.5, 41.5, 38.25, 30.25, 37.25], 5)
    fit = next(f for c, f in study.reports[0].fits if c.sft_step == 100)
    assert fit.collapsed and not np.isfinite(fit.ceiling_ci).all()
    branches = [b for b in study.evidence[0].scenes[0].branches if b.step == 100]
    assert len(branches) == 1 and branches[0].ceiling.value == 48.25
    assert (branches[0].ceiling.lo, branches[0].ceiling.hi) == pytest.approx(wilson_interval(48.25, N_EVAL))
    assert by_id(study)["F3"].verdict == "holds"


def test_three_seeds_combine_and_paradigms_enter_f8(tmp_path):
    write_layout(tmp_path, [0, 1, 2], ["arith"], ["luffy", "upt"])
    for seed, top in enumerate([74.0, 76.0, 75.0]):
        write_seed(tmp_path, seed, switch_ceiling=top, paradigms=[("luffy", 15.0), ("upt", 14.0)])
    study = build_study(tmp_path)
    f = by_id(study)
    best = f["F1"].numbers["best SFT-then-RL A_post"]
    assert best.seeds == 3 and best.value == pytest.approx(75.0, abs=1.0)
    assert isinstance(f["F8"], Finding) and f["F8"].verdict == "holds"
    assert set(f["F8"].numbers) == {"best SFT-then-RL A_post", "LUFFY ceiling", "UPT ceiling"}
    sft_then_rl = next(p for p in study.paradigms if p.method == "sft_then_rl")
    assert sft_then_rl.seeds == 3 and np.isfinite(sft_then_rl.y_ci).all()
    md = write_study(study, tmp_path / "report").read_text()
    assert "## Seed 2" in md and "(3 seeds" in md
    assert "| id | seed 0 | seed 1 | seed 2 |" in md and "| F8 | holds | holds | holds |" in md
    per_seed = json.loads((tmp_path / "report" / "report.json").read_text())["findings_per_seed"]
    assert sorted(per_seed) == ["0", "1", "2"] and per_seed["1"][0]["id"] == "F1"
    assert (tmp_path / "report" / "fits-seed1.png").exists()


@pytest.mark.parametrize("models, line", [
    ({0: "base:1m with model.seed 0", 1: "base:1m with model.seed 0"},
     "Base model: base:1m with model.seed 0, the same for all 2 seeds: they vary the task's splits, the data order "
     "and the sampling, not the base model (`vary_base_model: true` varies it too)."),
    ({1: "base:1m with model.seed 1", 2: "base:1m with model.seed 2"},
     "Base models: one per seed (seed 1: base:1m with model.seed 1; seed 2: base:1m with model.seed 2), so the "
     "replications also sample the base model."),
    ({0: "/ckpt/qwen", 1: "/ckpt/qwen"},
     "Base model: /ckpt/qwen, the same for all 2 seeds: they vary the task's splits, the data order and the sampling, "
     "not the base model."),
    ({0: None, 1: "base:1m with model.seed 0"}, ""),  # a run that does not say: no line
])
def test_the_base_models_line(models, line):
    assert render_base_models(models) == line


def test_points_averaged_over_seeds_keep_their_intervals_on_the_accuracy_scale():
    # Two seeds far apart near both ends: t(0.975, 1) = 12.7 makes the raw intervals run past 0 and 100.
    curves = [Paradigm("sft", "pure SFT", np.array([0.0, 1.0]), np.array(y), 0.0, np.array([0, 100]), None, "",
                       np.array([[max(y[0] - 2, 0.0), y[1] - 2], [y[0] + 2, min(y[1] + 2, 100.0)]]))
              for y in ([1.0, 99.0], [6.0, 90.0])]
    mean = mean_over_seeds(curves)
    assert mean.y == pytest.approx([3.5, 94.5]) and mean.seeds == 2
    assert mean.y_ci[0, 0] == 0.0 and mean.y_ci[1, 1] == 100.0
    assert mean.y_ci[1, 0] == pytest.approx(3.5 + 12.706 * np.std([1.0, 6.0], ddof=1) / np.sqrt(2), abs=0.01)


def test_a_directory_without_the_layout_is_refused(tmp_path):
    with pytest.raises(RetuInputError, match="pipeline.json: not found"):
        build_study(tmp_path)


def test_retu_report_on_a_pipeline_directory_prints_the_verdicts(tmp_path):
    from typer.testing import CliRunner

    from conftest import cli_app

    write_layout(tmp_path, [0], ["arith"], [])
    write_seed(tmp_path, 0)
    result = CliRunner().invoke(cli_app(), ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"wrote {tmp_path / 'report' / 'report.md'}"
    assert lines[1:4] == ["F1: holds", "F2: holds", "F3: holds"] and lines[4].startswith("F4: not tested (")
    assert (tmp_path / "report" / "report.md").read_text().startswith("# retu report\n\n## Findings\n")
