"""Pipeline configuration, stage configs and branch selection (no training)."""

import numpy as np
import pytest

from retu.errors import RetuInputError
from retu.phases import detect_phases
from retu.pipeline import choose_branches, load_pipeline_config, rl_config, sft_config


def test_defaults_build_valid_stage_configs(tmp_path):
    p = load_pipeline_config(None, [f"run_dir={tmp_path}"])
    sft = sft_config(p, p.datasets[0])
    rl = rl_config(p, str(tmp_path / "seed-0" / "arith" / "checkpoints" / "step-100"), "arith-step100")
    assert sft.kind == "sft" and sft.log.run_dir == str(tmp_path / "seed-0" / "arith")
    assert rl.kind == "rl" and rl.loss.algo == "dapo_dc"
    assert rl.log.run_dir == str(tmp_path / "seed-0" / "rl" / "arith-step100")
    assert rl.model.name_or_path.endswith("step-100")


def test_a_seed_sets_the_run_and_data_seeds_in_its_own_directory(tmp_path):
    from retu.pipeline import check_stages, paradigm_config

    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "seeds=[3, 4]", "paradigms=[luffy]",
                                    "paradigm_overrides={luffy: [optim.lr=5.0e-5]}"])
    sft = sft_config(p, p.datasets[0], seed=4)
    assert (sft.seed, sft.data.seed, sft.model.seed, sft.log.run_dir) == (4, 4, 0, str(tmp_path / "seed-4" / "arith"))
    luffy = paradigm_config(p, "luffy", "base:1m", seed=3)
    assert (luffy.loss.algo, luffy.optim.lr, luffy.seed) == ("luffy", 5e-5, 3)
    assert luffy.log.run_dir == str(tmp_path / "seed-3" / "paradigms" / "luffy")
    assert sorted(check_stages(p)) == [3, 4]


def test_vary_base_model_gives_each_seed_its_own_base_model(tmp_path):
    from retu.compare import load_compare_config, rl_run_config, sft_run_config
    from retu.pipeline import check_stages, paradigm_config

    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "seeds=[3, 4]", "vary_base_model=true", "paradigms=[upt]"])
    sft, rl = sft_config(p, p.datasets[0], seed=4), rl_config(p, "base:1m", "base", seed=3)
    assert (sft.seed, sft.data.seed, sft.model.seed) == (4, 4, 4)
    assert (rl.seed, rl.model.name_or_path, rl.model.seed) == (3, "base:1m", 3)
    assert paradigm_config(p, "upt", "base:1m", seed=4).model.seed == 4
    assert sorted(check_stages(p)) == [3, 4]
    c = load_compare_config(None, [f"run_dir={tmp_path}", "vary_base_model=true"])
    assert (sft_run_config(c, 7).model.seed, rl_run_config(c, "luffy", "base:1m", 7).model.seed) == (7, 7)
    assert sft_run_config(load_compare_config(None, [f"run_dir={tmp_path}"]), 7).model.seed == 0


@pytest.mark.parametrize("load, overrides, match", [
    ("pipeline", ["vary_base_model=2"], "pipeline: vary_base_model must be true or false, got 2"),
    ("pipeline", ["vary_base_model=true", "sft_overrides=[model.seed=5]"],
     "pipeline: vary_base_model sets model.seed to each seed, so the override 'model.seed=5' cannot apply"),
    ("pipeline", ["vary_base_model=true", "paradigms=[upt]", "paradigm_overrides={upt: [model.seed=2]}"],
     "the override 'model.seed=2' cannot apply"),
    ("compare", ["vary_base_model=true", "rl_overrides=[model.seed=1]"],
     "compare: vary_base_model sets model.seed to each seed, so the override 'model.seed=1' cannot apply"),
])
def test_vary_base_model_refuses_a_fixed_model_seed(load, overrides, match):
    from retu.compare import load_compare_config

    with pytest.raises(RetuInputError, match=match):
        (load_pipeline_config if load == "pipeline" else load_compare_config)(None, overrides)


def test_stages_that_would_evaluate_differently_are_refused(tmp_path):
    from retu.pipeline import check_stages

    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "rl_overrides=[eval.max_new_tokens=32]"])
    with pytest.raises(RetuInputError, match=r"eval.max_new_tokens differs between stages sft .* \(64\) and rl base "
                                             r"\(32\)"):
        check_stages(p)
    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "paradigms=[upt]",
                                    "paradigm_overrides={upt: ['data.arith_train_steps=[2,3]']}"])
    with pytest.raises(RetuInputError, match="data.arith_train_steps differs between stages rl base"):
        check_stages(p)
    # LUFFY learns from the expert's trajectories: an expert with other errors is another training set.
    p = load_pipeline_config(None, [f"run_dir={tmp_path}", "paradigms=[luffy]",
                                    "paradigm_overrides={luffy: ['data.arith_sign_slip=0.0']}"])
    with pytest.raises(RetuInputError, match=r"data.arith_sign_slip differs between stages rl base \(0.8\) and"):
        check_stages(p)


def test_yaml_datasets_and_overrides(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "run_dir: out\ndatasets:\n  - {name: small, overrides: [data.arith_n_train=64], branches: [Stable, Severe]}\n"
        "  - {name: large}\nbranches: [50, 100]\nsft_overrides: [optim.max_steps=100]\n")
    p = load_pipeline_config(tmp_path / "p.yaml")
    assert p.branches == (50, 100) and [d["name"] for d in p.datasets] == ["small", "large"]
    assert p.datasets[0]["branches"] == ("Stable", "Severe") and "branches" not in p.datasets[1]
    assert sft_config(p, p.datasets[0]).data.arith_n_train == 64
    assert sft_config(p, p.datasets[1]).optim.max_steps == 100


@pytest.mark.parametrize("text, match", [
    ("runs: x\n", "unknown key 'runs'; valid keys: run_dir"),
    ("datasets: [{overrides: []}]\n", "each dataset needs a 'name'"),
    ("datasets: [{name: a, size: 3}]\n", "each dataset needs a 'name' \\(and optional 'overrides', 'branches'\\)"),
    ("datasets: [{name: a, branches: [Late]}]\n", r"datasets\[a\].branches must be 'auto', 'switch'"),
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


# ---------------------------------------------------------------------------------------------------
# retu compare: configuration and run configs (no training)


def test_compare_defaults_build_one_run_per_method(tmp_path):
    from retu.compare import METHODS, load_compare_config, rl_run_config, sft_run_config

    c = load_compare_config(None, [f"run_dir={tmp_path}", "method_overrides={upt: [optim.lr=1.0e-3]}"])
    assert c.methods == ("sft", "dapo_dc", "luffy", "srft", "upt", "sft_then_rl")
    assert set(c.methods) <= set(METHODS)
    assert sft_run_config(c).log.run_dir == str(tmp_path / "seed-0" / "sft")
    upt = rl_run_config(c, "upt", "base:1m")
    assert (upt.loss.algo, upt.optim.lr, upt.log.run_dir) == ("upt", 1e-3, str(tmp_path / "seed-0" / "upt"))
    seven = sft_run_config(c, 7)
    assert (seven.seed, seven.data.seed, seven.log.run_dir) == (7, 7, str(tmp_path / "seed-7" / "sft"))
    then = rl_run_config(c, "sft_then_rl", str(tmp_path / "sft" / "checkpoints" / "step-50"))
    assert then.loss.algo == "dapo_dc" and then.model.name_or_path.endswith("step-50")


def test_compare_resets_the_shared_configs_loss_kwargs_for_other_methods(tmp_path):
    from retu.compare import load_compare_config, rl_run_config

    (tmp_path / "rl.yaml").write_text("kind: rl\nloss: {algo: dapo_dc, advantage: grpo_no_std, "
                                      "aggregation: seq_mean_token_mean, kwargs: {eps_high: 0.3}}\n")
    c = load_compare_config(None, [f"rl_config={tmp_path / 'rl.yaml'}"])
    dapo, luffy = rl_run_config(c, "dapo_dc", "base:1m").loss, rl_run_config(c, "luffy", "base:1m").loss
    assert (dapo.advantage, dapo.aggregation, dapo.kwargs) == ("grpo_no_std", "seq_mean_token_mean", {"eps_high": 0.3})
    # The replaced parts belong to dapo_dc too (a method takes no aggregation): LUFFY starts from its preset.
    assert (luffy.algo, luffy.advantage, luffy.aggregation, luffy.kwargs) == ("luffy", None, None, {})


@pytest.mark.parametrize("overrides, match", [
    (["methods=[sft, ppo]"], "unknown method 'ppo'"),
    (["methods=[sft, sft]"], "without repeats"),
    (["switch=-3"], "switch must be 'auto' or a positive SFT step"),
    (["then_rl_algo=sft"], "then_rl_algo must be one of"),
    (["method_overrides=[1]"], "method_overrides must map a method"),
    (["switchh=4"], "unknown key 'switchh'; valid keys: run_dir"),
])
def test_bad_compare_config(overrides, match):
    from retu.compare import load_compare_config

    with pytest.raises(RetuInputError, match=match):
        load_compare_config(None, overrides)


def test_compare_switch_checkpoint(tmp_path):
    from retu.compare import load_compare_config, switch_checkpoint
    from retu.metrics import JsonlLogger

    sft = tmp_path / "sft"
    for step in (50, 100, 150):
        (sft / "checkpoints" / f"step-{step}").mkdir(parents=True)
        (sft / "checkpoints" / f"step-{step}" / "retu_state.json").write_text("{}")
    logger = JsonlLogger(sft / "metrics.jsonl", run_id="sft")
    for step, loss in [(0, 2.0), (50, 1.2), (100, 1.0), (150, 1.01)]:
        logger.log("eval", step=step, metrics={"loss/val": loss})
    assert switch_checkpoint(load_compare_config(), sft).name == "step-100"  # first Stable
    assert switch_checkpoint(load_compare_config(None, ["switch=50"]), sft).name == "step-50"
    with pytest.raises(RetuInputError, match=r"no checkpoint at SFT step 60 .*\(saved: 50, 100, 150\)"):
        switch_checkpoint(load_compare_config(None, ["switch=60"]), sft)


def test_branches_modes(tmp_path):
    assert load_pipeline_config(None, ["branches=switch"]).branches == "switch"
    assert load_pipeline_config(None, ["branches=[100, 200]"]).branches == (100, 200)
    assert load_pipeline_config(None, ["branches=[Adaptive, Stable]"]).branches == ("Adaptive", "Stable")
    for bad in ("all", "[Adaptive, 100]", "[]"):
        with pytest.raises(RetuInputError, match="branches must be 'auto', 'switch', a list of SFT steps or a list of "
                                                 "sub-phases"):
            load_pipeline_config(None, [f"branches={bad}"])
    for bad in ("[arith, arith]", "[rl]", "[seed-1]"):
        names = ", ".join(f"{{name: {n}}}" for n in bad.strip("[]").split(", "))
        with pytest.raises(RetuInputError, match="dataset names must be unique"):
            load_pipeline_config(None, [f"datasets=[{names}]"])
    with pytest.raises(RetuInputError, match="seeds must be a non-empty list of distinct integers"):
        load_pipeline_config(None, ["seeds=[1, 1]"])
    with pytest.raises(RetuInputError, match="unknown paradigm 'lufy'"):
        load_pipeline_config(None, ["paradigms=[lufy]"])


def test_workers_is_a_positive_integer_and_prune_runs_alone():
    assert load_pipeline_config(None, ["workers=2"]).workers == 2
    for bad in ("0", "-1", "two", "true"):
        with pytest.raises(RetuInputError, match="^pipeline: workers must be a positive integer, got "):
            load_pipeline_config(None, [f"workers={bad}"])
    with pytest.raises(RetuInputError, match=r"^pipeline: prune compares each branch with the branches finished "
                                             r"before it, so it runs one stage at a time; set workers: 1 \(got 2\)$"):
        load_pipeline_config(None, ["workers=2", "prune=true"])
    from retu.compare import load_compare_config

    assert load_compare_config(None, ["workers=3"]).workers == 3
    with pytest.raises(RetuInputError, match="^compare: workers must be a positive integer, got 0$"):
        load_compare_config(None, ["workers=0"])


def test_orchestrators_refuse_a_distributed_launch(tmp_path, monkeypatch):
    from retu.compare import load_compare_config, run_compare
    from retu.pipeline import run_pipeline

    monkeypatch.setenv("WORLD_SIZE", "2")
    for name, run, cfg in (("retu pipeline", run_pipeline, load_pipeline_config(None, [f"run_dir={tmp_path}/p"])),
                           ("retu compare", run_compare, load_compare_config(None, [f"run_dir={tmp_path}/c"]))):
        with pytest.raises(RetuInputError, match=f"{name} runs its stages in one process \\(launched with 2\\); "
                                                 "launch the stages themselves with `accelerate launch -m retu"):
            run(cfg)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_pruning_runs_each_datasets_latest_branch_first_and_pure_rl_last(tmp_path, monkeypatch):
    from retu import pipeline

    picks = {"arith": [100, 200], "n500": [150, 300]}
    monkeypatch.setattr(pipeline, "branch_points",
                        lambda wanted, run: [(f"{run}/checkpoints/step-{s}", f"{run.name}-step{s}") for s in picks[run.name]])
    overrides = [f"run_dir={tmp_path}", "datasets=[{name: arith}, {name: n500}]"]
    names = {}
    for prune in (False, True):
        p = load_pipeline_config(None, [*overrides, f"prune={str(prune).lower()}"])
        sfts = [sft_config(p, ds) for ds in p.datasets]
        names[prune] = [n for _, n in pipeline.branch_order(p, sfts, "base:1m")]
    assert names[False] == ["base", "arith-step100", "arith-step200", "n500-step150", "n500-step300"]
    assert names[True] == ["arith-step200", "arith-step100", "n500-step300", "n500-step150", "base"]


def test_a_pruned_stage_counts_as_done_only_when_pruning(tmp_path):
    from retu.metrics import JsonlLogger, run_end_status
    from retu.stage_pool import Stage, run_stages

    cfg = rl_config(load_pipeline_config(None, [f"run_dir={tmp_path}"]), "base:1m", "base")
    ran, said = [], []
    assert run_end_status(f"{cfg.log.run_dir}/metrics.jsonl") is None
    JsonlLogger(f"{cfg.log.run_dir}/metrics.jsonl", run_id="base").log("run_end", step=2, status="pruned")

    def train(cfg, *, progress):
        ran.append(cfg)

    run_stages([iter([[Stage(cfg, train, "rl base", ("ok", "pruned"))]])], echo=said.append)
    assert ran == [] and said == ["rl base (pruned)"]
    run_stages([iter([[Stage(cfg, train, "rl base")]])], echo=said.append)
    assert ran == [cfg] and said[-1] == "rl base"
