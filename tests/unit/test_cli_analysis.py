"""`retu flops`, `retu phases` and `retu fit` end to end: outputs, figures, exit code 2 on bad input."""

import json
import subprocess
import sys

import pytest
from conftest import CURVES, SHARED, needs_shared

from retu.scaling import FitOptions, fit_ceiling, load_curves

REFS = json.loads((CURVES / "references.json").read_text())["scenes"]
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return subprocess.run([sys.executable, "-m", "retu", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def val_loss_csv(tmp_path):
    p = tmp_path / "general_val.csv"
    rows = REFS["general"]["val_loss_digitised"]
    p.write_text("step,eval_loss\n" + "".join(f"{r['sft_step']},{r['val_loss']}\n" for r in rows))
    return p


def test_flops_json():
    r = run("flops", "--model", "Qwen2.5-7B", "--paradigm", "sft", "--batch", 512, "--seq-len", 3771,
            "--steps", 360, "--json")
    assert r.returncode == 0, r.stderr
    assert round(json.loads(r.stdout)["run_eflops"], 2) == 34.92


def test_phases_json_and_plot(val_loss_csv, tmp_path):
    r = run("phases", val_loss_csv, "--json", "--plot", tmp_path / "phases.png")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d) >= {"L_min", "checkpoints", "recommended_step", "mild_window"}
    assert d["L_min"] == pytest.approx(0.3702) and d["mild_window"] is None
    assert d["checkpoints"][0] == {"step": 0, "val_loss": 0.7098, "phase": "Adaptive"}
    png = (tmp_path / "phases.png").read_bytes()
    assert png.startswith(PNG) and len(png) > 20_000


def test_fit_json_one_curve():
    r = run("fit", CURVES / "curves" / "rl" / "general" / "ckpt1080.json", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "tables" not in out
    (f,) = out["fits"]
    assert set(f) >= {"source", "scene", "sft_step", "n_points", "P_start", "A", "PL", "C_mid", "B", "A_ci",
                      "saturated", "collapsed", "n_outliers", "holdout_rmse"}
    assert (f["scene"], f["sft_step"], f["n_points"], f["saturated"]) == ("general", 1080, 25, True)
    assert f["A"] == pytest.approx(80.1, abs=1.0) and f["A_ci"][0] < f["A"] < f["A_ci"][1]


def test_fit_directory_with_tables_and_figures(tmp_path, val_loss_csv):
    r = run("fit", CURVES / "curves" / "rl" / "uniform102K", CURVES / "curves" / "sft" / "uniform102K.json",
            "--plot", tmp_path / "fits.png", "--val-loss", f"uniform102K={val_loss_csv}")
    assert r.returncode == 0, r.stderr
    assert "scene uniform102K: A_post = P_sft + PL_rl" in r.stdout
    for name in ("fits.png", "fits_decomposition.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)


def test_fit_authors_fits_the_shipped_curves_and_needs_some_input():
    r = run("fit", "--authors", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["fits"]) == 24 and {t["scene"] for t in out["tables"]} == {"general", "easy102K", "uniform102K"}
    r = run("fit")
    assert r.returncode == 2 and r.stderr == "retu: error: retu fit: give curve files, directories or metrics.jsonl, or --authors\n"


@needs_shared("data/retu")
def test_shipped_curves_are_the_shared_files_unchanged():
    shipped = sorted(p.relative_to(CURVES) for p in CURVES.rglob("*.json"))
    assert len(shipped) == 28
    for rel in shipped:
        assert json.loads((CURVES / rel).read_text()) == json.loads((SHARED / "data" / "retu" / rel).read_text()), rel


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.json", "missing.json: file not found"),
    (lambda d: (d / "bad.json").write_text("{") and d / "bad.json", "bad.json:1: not valid JSON"),
    (lambda d: (d / "short.json").write_text(json.dumps({
        "kind": "rl", "branch_start": {"overall": 50}, "points": [{"eflops": 1, "overall": 60}]})) and d / "short.json",
     "the fit needs at least 4"),
    (lambda d: (d / "neg.json").write_text(json.dumps({
        "kind": "rl", "branch_start": {"overall": 50},
        "points": [{"eflops": e, "overall": 60} for e in (1, -2, 3, 4, 5)]})) and d / "neg.json", "negative compute"),
])
def test_fit_bad_input_exit_2_nothing_written(tmp_path, make, match):
    path = make(tmp_path)
    r = run("fit", path, "--plot", tmp_path / "out.png")
    assert r.returncode == 2
    assert match in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out.png").exists()


def test_phases_bad_input(tmp_path):
    (tmp_path / "l.csv").write_text("step,eval_loss\n1,nan\n")
    r = run("phases", tmp_path / "l.csv", "--plot", tmp_path / "p.png")
    assert r.returncode == 2 and "no finite values" in r.stderr and not (tmp_path / "p.png").exists()


def test_fit_upto_keeps_the_schema_and_adds_upto_with_a_prior():
    # README's `retu fit --upto` example, with --json.
    general = CURVES / "curves" / "rl" / "general"
    r = run("fit", general / "ckpt1080.json", "--upto", 0.3, "--prior", general, "--json")
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["fits"]
    (curve,) = load_curves([general / "ckpt1080.json"])
    finished = fit_ceiling(curve.x, curve.y, p_start=curve.p_start, options=FitOptions(n_boot=0)).to_dict()
    assert set(f) == set(finished) | {"scene", "sft_step", "upto", "prior_curves"}
    # The other 12 curves of the scene are the siblings: the fitted curve itself is left out.
    assert (f["upto"], f["prior_curves"], f["n_points"]) == (0.3, 12, 6)
    assert f["A_ci"][0] <= REFS["general"]["checkpoints"]["1080"]["camera_ready"]["A_post"] <= f["A_ci"][1]


@pytest.mark.parametrize("args, message", [
    (["--upto", 1.5], "retu: error: --upto must be a fraction of the curve's compute in (0, 1], got 1.5\n"),
    (["--upto", 0], "retu: error: --upto must be a fraction of the curve's compute in (0, 1], got 0.0\n"),
    (["--upto", 0.02], "retu: error: {path}: 0 points after the branch point with compute <= 1.023 EFLOPs "
                       "(upto 0.02); the fit needs at least 4\n"),
    (["--prior", "{path}"], "retu: error: --prior needs --upto: finished curves are fitted alone\n"),
])
def test_fit_upto_bad_input_exit_2_one_line(args, message):
    path = CURVES / "curves" / "rl" / "general" / "ckpt1080.json"
    r = run("fit", path, *[str(a).format(path=path) for a in args])
    assert r.returncode == 2 and r.stderr == message.format(path=path)
