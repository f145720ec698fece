"""Pipeline configuration, stage configs and branch selection (no training)."""

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.phases import detect_phases
from retu.pipeline import choose_branches, load_pipeline_config, rl_config, sft_config


def test_defaults_build_valid_stage_configs(tmp_path):
    p = load_pipeline_config(None, [f"run_dir={tmp_path}"])
    sft = sft_config(p, p.datasets[0])
    rl = rl_config(p, str(tmp_path / "arith" / "checkpoints" / "step-100"), "arith-step100")
    assert sft.kind == "sft" and sft.log.run_dir == str(tmp_path / "arith")
    assert rl.kind == "rl" and rl.loss.algo == "dapo_dc" and rl.log.run_dir == str(tmp_path / "rl" / "arith-step100")
    assert rl.model.name_or_path.endswith("step-100")


def test_yaml_datasets_and_overrides(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "run_dir: out\ndatasets:\n  - {name: small, overrides: [data.arith_n_train=64]}\n  - {name: large}\n"
        "branches: [50, 100]\nsft_overrides: [optim.max_steps=100]\n")
    p = load_pipeline_config(tmp_path / "p.yaml")
    assert p.branches == (50, 100) and [d["name"] for d in p.datasets] == ["small", "large"]
    assert sft_config(p, p.datasets[0]).data.arith_n_train == 64
    assert sft_config(p, p.datasets[1]).optim.max_steps == 100


@pytest.mark.parametrize("text, match", [
    ("runs: x\n", "unknown key 'runs'; valid keys: run_dir"),
    ("datasets: [{overrides: []}]\n", "each dataset needs a 'name'"),
])
def test_bad_pipeline_config(tmp_path, text, match):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(RetuInputError, match=match):
        load_pipeline_config(tmp_path / "p.yaml")


def test_bad_stage_override_is_caught_before_training(tmp_path):
    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "rl_overrides=[optim.lrr=1]"])
    with pytest.raises(RetuInputError, match="unknown key 'optim.lrr'"):
        rl_config(p, "base:1m", "base")


def test_branch_choice_one_per_phase_plus_switch():
    # Adaptive 50, 100 (middle: 50); Stable 150 (switch), 200; Mild 250; Severe 300.
    p = detect_phases(np.array([0, 50, 100, 150, 200, 250, 300]),
                      np.array([2.0, 1.5, 1.2, 1.0, 1.01, 1.05, 1.2]))
    assert choose_branches(p, [50, 100, 150, 200, 250, 300]) == [50, 150, 250, 300]
    assert choose_branches(p, [150]) == [150]  # only saved checkpoints can be branched from
