"""Config loading: defaults, YAML, overrides, and errors that name the file and list valid keys."""

import pytest

from retu.config import load_config, save_config
from retu.errors import RetuInputError


def test_defaults_and_overrides():
    cfg = load_config(overrides=["optim.lr=1e-3", "rollout.group_size=4", "loss.kwargs={eps_high: 0.3}", "kind=rl"])
    assert cfg.optim.lr == 1e-3 and cfg.rollout.group_size == 4 and cfg.loss.kwargs == {"eps_high": 0.3}
    assert cfg.kind == "rl" and cfg.model.name_or_path == "base:1m"


def test_yaml_round_trip(tmp_path):
    (tmp_path / "c.yaml").write_text("kind: sft\noptim:\n  lr: 5.0e-4\n  max_steps: 20\n")
    cfg = load_config(tmp_path / "c.yaml")
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize("text, overrides, match", [
    ("optim:\n  lrr: 1\n", [], r"c\.yaml: unknown key 'optim\.lrr'; valid keys: optim\.lr, optim\.weight_decay"),
    ("bogus: 1\n", [], "unknown key 'bogus'; valid keys: kind, seed, model"),
    ("optim: [1, 2]\n", [], "'optim' must be a mapping"),
    ("optim:\n  lr: fast\n", [], "'optim.lr' must be float, got 'fast'"),
    ("a: [\n", [], r"c\.yaml:2: not valid YAML"),
    ("", ["optim.batch_size=5", "optim.grad_accum=2"], "c.yaml: optim.batch_size \\(5\\) must be divisible"),
    ("", ["rollout.upt_gate=9"], r"rollout\.upt_gate must be in 0\.\.8"),
    ("", ["optim.lr"], "must look like key=value"),
])
def test_errors(tmp_path, text, overrides, match):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(RetuInputError, match=match):
        load_config(tmp_path / "c.yaml", overrides)


def test_missing_file(tmp_path):
    with pytest.raises(RetuInputError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("overrides, match", [
    (["kind=rl", "optim.skip_grad_norm=-1"], "optim.skip_grad_norm \\(-1.0\\) must be >= 0"),
    (["kind=rl", "optim.skip_grad_norm=80", "optim.grad_clip=0"], "needs optim.grad_clip > 0"),
    (["kind=sft", "optim.skip_grad_norm=80"], "applies to RL runs only"),
])
def test_skip_grad_norm_is_checked(overrides, match):
    with pytest.raises(RetuInputError, match=match):
        load_config(None, overrides)
    assert load_config(None, ["kind=rl", "optim.skip_grad_norm=80"]).optim.skip_grad_norm == 80.0


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_vllm_gpu_memory_is_a_share(value):
    with pytest.raises(RetuInputError, match=f"rollout.vllm_gpu_memory must be in \\(0, 1\\], got {float(value)}"):
        load_config(None, [f"rollout.vllm_gpu_memory={value}"])
    assert load_config(None, ["rollout.vllm_gpu_memory=1"]).rollout.vllm_gpu_memory == 1.0
