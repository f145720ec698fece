"""Every YAML under configs/ (recursively) loads, names the command that runs it, and builds.

Run configs load with `retu.config.load_config` and build their trainer's configuration; compare
and pipeline configs load with their loaders and build every run config they name;
configs/accelerate/ holds `accelerate launch --config_file` files, which load with accelerate's parser.
"""

from pathlib import Path

import pytest

from retu.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
ACCELERATE = ROOT / "configs" / "accelerate"


def _build_sft(cfg, tmp_path):
    from retu.engine.sft import sft_args

    args = sft_args(cfg, tmp_path)
    assert args.max_steps == cfg.optim.max_steps and args.learning_rate == cfg.optim.lr
    assert args.assistant_only_loss and args.max_length == cfg.data.max_prompt_len + cfg.data.max_response_len


def _build_rl(cfg, tmp_path):
    import dataclasses

    from retu.engine.rl import build_grpo_config

    cfg = dataclasses.replace(cfg, log=dataclasses.replace(cfg.log, run_dir=str(tmp_path / "run")))
    args = build_grpo_config(cfg)
    assert args.max_steps == cfg.optim.max_steps and args.learning_rate == cfg.optim.lr
    assert args.num_generations == cfg.rollout.group_size and args.max_completion_length == cfg.data.max_response_len


# kind -> how a run config of that kind becomes its trainer's configuration.
BUILDERS = {"sft": _build_sft, "rl": _build_rl}


def test_tiny_configs_evaluate_alike():
    """Every tiny run config evaluates on the same held-out problems with the same settings, and the
    RL ones train on the same prompts and response limit (what `retu compare` and `retu pipeline`
    check; the standalone RL configs differ only in length and learning rate)."""
    from retu.config import EVAL_KEYS, config_value, to_dict

    tiny = {p.name: to_dict(load_config(p)) for p in CONFIGS
            if p.parent.name == "tiny" and p.stem.split("_")[0] in ("sft", "rl")}
    assert len(tiny) == 7
    rl_keys = ("data.train", "data.arith_n_train", "data.arith_train_steps", "data.max_response_len",
               "rollout.group_size", "rollout.temperature", "optim.batch_size")
    for key in EVAL_KEYS:
        assert len({repr(config_value(c, key)) for c in tiny.values()}) == 1, key
    for key in rl_keys:
        assert len({repr(config_value(c, key)) for c in tiny.values() if c["kind"] == "rl"}) == 1, key


def test_configs_exist():
    assert any(p.parent.name == "tiny" for p in CONFIGS) and any(p.parent.name == "paper" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_loads_and_builds(path, tmp_path):
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert any(str(path.relative_to(ROOT)) in line for line in header), "the header lacks the command that runs it"
    if path.parent == ACCELERATE:
        from accelerate.commands.config.config_args import ClusterConfig

        assert ClusterConfig.from_yaml_file(str(path)).num_processes >= 1
        return
    if path.stem == "compare":  # an orchestration config: every run config it names must build
        from retu.compare import load_compare_config, rl_run_config, sft_run_config

        ccfg = load_compare_config(path)
        assert sft_run_config(ccfg).kind == "sft"
        assert [rl_run_config(ccfg, m, "base:1m").loss.algo for m in ccfg.methods if m != "sft"] == \
            [m if m != "sft_then_rl" else ccfg.then_rl_algo for m in ccfg.methods if m != "sft"]
        return
    if any("retu pipeline" in line for line in header):  # every stage config of every seed builds and compares
        from retu.pipeline import check_stages, load_pipeline_config, paradigm_config, rl_config

        pcfg = load_pipeline_config(path)
        stages = check_stages(pcfg)
        assert list(stages) == list(pcfg.seeds) and all(len(s) == len(pcfg.datasets) for s in stages.values())
        assert all(c.kind == "sft" for s in stages.values() for c in s)
        assert rl_config(pcfg, "base:1m", "base").kind == "rl"
        assert [paradigm_config(pcfg, m, "base:1m").loss.algo for m in pcfg.paradigms] == list(pcfg.paradigms)
        return
    cfg = load_config(path)
    if cfg.kind in BUILDERS:
        BUILDERS[cfg.kind](cfg, tmp_path)
