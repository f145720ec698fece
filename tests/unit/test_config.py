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
    with pytest.raises(RetuInputError, match="nope.yaml: run config file not found"):
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


# ---------------------------------------------------------------------------------------------------
# Rules that read only config values live in retu.config (issue 13): each fails at load_config with
# one line naming the fields, before any command runs. Paths need not exist: only values are read.


@pytest.mark.parametrize("overrides, message", [
    # SFT (check_sft): its validation loss needs held-out expert trajectories
    (["data.train=rows.jsonl"],
     "data.val is empty: SFT needs held-out expert trajectories for its validation loss (a JSONL path, or 'arith')"),
    (["data.val=arith", "data.arith_n_val=0"],
     "data.arith_n_val must be >= 1: SFT needs held-out expert trajectories for its validation loss"),
    (["optim.batch_size=5", "optim.grad_accum=2"], "optim.batch_size (5) must be divisible by optim.grad_accum (2)"),
    # RL (check_rl)
    (["kind=rl", "data.train=rows.jsonl"],
     "RL needs a held-out evaluation set: set data.eval (a JSONL path or 'arith')"),
    (["kind=rl", "data.arith_n_eval=0"], "data.arith_n_eval must be >= 1: RL needs a held-out evaluation set"),
    (["kind=rl", "optim.batch_size=3", "rollout.group_size=2", "optim.grad_accum=4"],
     "RL rows per step (optim.batch_size x rollout.group_size = 6) must be divisible by optim.grad_accum (4)"),
    (["kind=rl", "loss.kwargs={beta_kl: 0.001}"],
     "loss.kwargs.beta_kl: a KL penalty needs reference log-probs, which retu rl does not compute yet; set it to 0 "
     "(as every RETU run)"),
    (["kind=rl", "loss.algo=luffy", "rollout.group_size=2", "rollout.n_expert=2"],
     "rollout.n_expert (2) must be < rollout.group_size (2) so each group keeps at least one rollout"),
    (["kind=rl", "loss.algo=ppo"], "loss.algo must be one of grpo, dapo_d, dapo_dc, luffy, srft, upt, got 'ppo'"),
    # sections (RolloutCfg, LogCfg)
    (["data.arith_sign_slip=1.5"], "data.arith_sign_slip is a probability in [0, 1], got 1.5"),
    (["data.arith_slip_at=2"], "data.arith_slip_at must be negative (a running result the expert writes without its "
     "minus sign), got 2"),
    (["rollout.gen_batch=-3"], "rollout.gen_batch must be >= 1, got -3"),
    (["kind=rl", "rollout.gen_batch=0"], "rollout.gen_batch must be >= 1, got 0"),
    (["log.report_to=mlflow"], "log.report_to must be one of none, tensorboard, wandb, got 'mlflow'"),
    (["log.profile_step=-1"], "log.profile_step must be >= 0, got -1"),
    (["kind=rl", "optim.max_steps=20", "log.profile_step=21"],
     "log.profile_step (21) is after the last step (optim.max_steps = 20); use 1..20, or 0"),
])
def test_config_rules_fail_at_load_with_one_line(overrides, message):
    with pytest.raises(RetuInputError) as err:
        load_config(None, overrides)
    assert str(err.value) == f"defaults: {message}"


def test_each_run_kind_checks_only_what_it_reads():
    # SFT never reads data.eval, the loss or the rollout sizes.
    sft = load_config(None, ["data.train=rows.jsonl", "data.val=val.jsonl", "loss.kwargs={beta_kl: 0.1}",
                             "rollout.group_size=1", "loss.algo=ppo"])
    assert (sft.data.eval, sft.loss.kwargs, sft.rollout.n_expert) == (None, {"beta_kl": 0.1}, 1)
    # RL never reads data.val; its micro-batches split rows (3 prompts x 4 = 12 rows), not prompts.
    rl = load_config(None, ["kind=rl", "data.train=rows.jsonl", "data.eval=eval.jsonl", "optim.batch_size=3",
                            "rollout.group_size=4", "optim.grad_accum=4", "data.arith_n_val=0"])
    assert (rl.data.val, rl.optim.batch_size * rl.rollout.group_size // rl.optim.grad_accum) == (None, 3)
    # Expert rows exist only in LUFFY / SRFT: GRPO's groups of one ignore rollout.n_expert.
    grpo = load_config(None, ["kind=rl", "loss.algo=grpo", "rollout.group_size=1", "rollout.n_expert=1"])
    assert (grpo.rollout.group_size, grpo.rollout.n_expert) == (1, 1)
    # The embedded task builds both held-out splits when training on it.
    assert load_config(None, ["kind=rl"]).data.eval is None and load_config(None).data.val is None


@pytest.mark.parametrize("overrides, message", [
    (["loss.advantage=grpo_std"],
     "loss.advantage must be one of grpo, grpo_population_std, grpo_no_std, got 'grpo_std'"),
    (["kind=rl", "loss.term=dapo"], "loss.term must be one of ppo_clip, grpo_clip, dapo_clip, pg_unclipped, sft_nll, "
                                    "got 'dapo'"),
    (["loss.term=luffy"],  # a method is a preset of its own (loss.algo), not a term
     "loss.term must be one of ppo_clip, grpo_clip, dapo_clip, pg_unclipped, sft_nll, got 'luffy'"),
    (["kind=rl", "loss.aggregation=seq_mean"],
     "loss.aggregation must be one of token_mean, seq_mean_token_mean, sum_over_lmax, got 'seq_mean'"),
    (["kind=rl", "loss.algo=upt", "loss.aggregation=token_mean"],
     "loss.term and loss.aggregation replace parts of grpo, dapo_d, dapo_dc; loss.algo=upt aggregates itself (set "
     "them to null; its normaliser is loss.kwargs.norm)"),
    # a replaced term starts from its own defaults: dapo_dc's clip_ratio_c is not grpo_clip's
    (["kind=rl", "loss.term=grpo_clip", "loss.kwargs={clip_ratio_c: 3.0}"],
     "loss.kwargs: unknown kwarg(s) clip_ratio_c for term 'grpo_clip'; valid: eps_low, eps_high, beta_kl, "
     "entropy_coef"),
    (["kind=rl", "loss.algo=luffy", "loss.kwargs={norm: sum}"],
     "loss.kwargs: method 'luffy': norm='sum' is not one of 'lmax', 'token_mean'"),
])
def test_loss_parts_are_registry_names(overrides, message):
    with pytest.raises(RetuInputError) as err:
        load_config(None, overrides)
    assert str(err.value) == f"defaults: {message}"


def test_loss_parts_load_and_default_to_the_preset(tmp_path):
    cfg = load_config(None, ["kind=rl", "loss.algo=luffy", "loss.advantage=grpo"])
    assert (cfg.loss.advantage, cfg.loss.term, cfg.loss.aggregation) == ("grpo", None, None)
    (tmp_path / "c.yaml").write_text("kind: rl\nloss: {algo: grpo, term: dapo_clip, aggregation: token_mean}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg.loss.term, cfg.loss.aggregation) == ("dapo_clip", "token_mean")
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
