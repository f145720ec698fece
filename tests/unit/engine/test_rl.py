"""The RL recipe's checks before training (retu.engine.rl): TRL's config, the split over processes."""

import pytest

from retu.errors import RetuInputError


def test_vllm_engines_reach_trls_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    cfg = load_config(None, ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "rollout.vllm_gpu_memory=0.5",
                             "rollout.vllm_server_url=http://h:9000", "log.run_dir=/nonexistent/run"])
    assert not build_grpo_config(cfg, "hf").use_vllm
    colocate, server = build_grpo_config(cfg, "vllm"), build_grpo_config(cfg, "vllm_server")
    assert (colocate.use_vllm, colocate.vllm_mode, colocate.vllm_gpu_memory_utilization) == (True, "colocate", 0.5)
    assert (server.vllm_mode, server.vllm_server_base_url) == ("server", "http://h:9000")
    with pytest.raises(RetuInputError, match="rollout.engine must be auto, hf, paged, vllm or vllm_server"):
        load_config(None, ["rollout.engine=sglang"])


def test_paged_engine_reaches_trls_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    base = ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "log.run_dir=/nonexistent/run"]
    cfg = load_config(None, [*base, "rollout.paged_config={num_blocks: 16, max_batch_tokens: 256}"])
    paged, hf = build_grpo_config(cfg, "paged"), build_grpo_config(cfg, "hf")
    assert (paged.use_transformers_continuous_batching, paged.use_vllm) == (True, False)
    assert paged.transformers_continuous_batching_config == {"num_blocks": 16, "max_batch_tokens": 256}
    assert (hf.use_transformers_continuous_batching, hf.transformers_continuous_batching_config) == (False, None)
    bad = load_config(None, [*base, "rollout.paged_config={blocks: 16}"])
    with pytest.raises(RetuInputError, match="rollout.paged_config: .*'blocks'"):
        build_grpo_config(bad, "paged")


def test_throughput_switches_reach_trls_rl_config():
    from retu.config import load_config
    from retu.engine.rl import build_grpo_config

    base = ["kind=rl", "optim.batch_size=2", "rollout.group_size=2", "log.run_dir=/nonexistent/run"]
    default = build_grpo_config(load_config(None, base))
    assert (default.activation_checkpointing, default.torch_compile, default.use_liger_kernel) == (False, False, False)
    on = build_grpo_config(load_config(None, [*base, "optim.gradient_checkpointing=true", "optim.torch_compile=true"]))
    assert (on.activation_checkpointing, on.torch_compile) == (True, True)
    with pytest.raises(RetuInputError, match=r"optim\.liger_kernel: .*set optim\.liger_kernel=false"):
        build_grpo_config(load_config(None, [*base, "optim.liger_kernel=true"]))


@pytest.mark.parametrize("world, overrides, match", [
    (3, ["optim.batch_size=4"], r"optim.batch_size \(4\) and rollout.gen_batch \(None\) must divide by the 3 processes"),
    (2, ["optim.batch_size=4", "rollout.gen_batch=5"], r"rollout.gen_batch \(5\) must divide by the 2 processes"),
    (2, ["optim.batch_size=4", "rollout.group_size=1", "optim.grad_accum=4"],
     r"a process's 2 rows .* must divide by optim.grad_accum \(4\)"),
])
def test_distributed_batch_split_refusals(monkeypatch, world, overrides, match):
    from retu.config import load_config
    from retu.engine.rl import check_split

    cfg = load_config(None, ["kind=rl", "log.run_dir=/nonexistent/run", *overrides])
    assert check_split(cfg) == 1  # one process: any batch splits
    monkeypatch.setenv("WORLD_SIZE", str(world))
    with pytest.raises(RetuInputError, match=match):
        check_split(cfg)


def test_distributed_split_accepts_whole_groups_per_process(monkeypatch):
    from retu.config import load_config
    from retu.engine.rl import check_split

    monkeypatch.setenv("WORLD_SIZE", "4")
    cfg = load_config(None, ["kind=rl", "optim.batch_size=8", "rollout.gen_batch=16", "optim.grad_accum=2",
                             "log.run_dir=/nonexistent/run"])
    assert check_split(cfg) == 4  # 2 prompts x 8 rows = 16 rows a process, 2 micro-batches of 8


def _two_rows(row0_ratio: float):
    """Row 0: 3 tokens at ratio `row0_ratio`, advantage +1; row 1: 1 token at ratio 1, advantage -2."""
    import math

    import torch

    from retu.algos.types import LossInputs

    old = torch.tensor([[-math.log(row0_ratio)] * 3, [0.0] * 3], dtype=torch.float64)
    return LossInputs(logprobs=torch.zeros(2, 3, dtype=torch.float64), old_logprobs=old,
                      advantages=torch.tensor([1.0, -2.0], dtype=torch.float64),
                      mask=torch.tensor([[True, True, True], [True, False, False]]))


@pytest.mark.parametrize("overrides, row0_ratio, expected", [
    # ratio 1: per-token loss -A, so row 0 is -1 on each of 3 tokens and row 1 is +2 on its one token
    ([], 1.0, (-3 + 2) / 4),  # dapo_dc's token_mean over 4 tokens
    (["loss.aggregation=seq_mean_token_mean"], 1.0, (-1 + 2) / 2),  # mean of the row means
    (["loss.aggregation=sum_over_lmax"], 1.0, (-3 + 2) / 3),  # sum / L_max, L_max = T = 3
    # ratio 1.25 on row 0 (A > 0): dapo_clip's eps_high 0.28 leaves it, grpo_clip's own 0.2 clips it to 1.2
    ([], 1.25, (-3 * 1.25 + 2) / 4),
    (["loss.term=grpo_clip"], 1.25, (-3 * 1.2 + 2) / 4),
    (["loss.term=grpo_clip", "loss.kwargs={eps_high: 0.28}"], 1.25, (-3 * 1.25 + 2) / 4),
])
def test_the_loss_section_replaces_the_presets_term_and_aggregation(overrides, row0_ratio, expected):
    import torch

    from retu.config import load_config

    algorithm = load_config(None, ["kind=rl", *overrides]).loss.algorithm()
    loss = algorithm.loss(_two_rows(row0_ratio)).loss
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert algorithm.sampling.dynamic_sampling  # the preset's sampling stays (dapo_dc)


def test_the_loss_section_replaces_the_presets_advantage():
    import torch

    from retu.config import load_config

    rewards, one_group = torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.zeros(4, dtype=torch.long)
    preset = load_config(None, ["kind=rl"]).loss.algorithm()
    replaced = load_config(None, ["kind=rl", "loss.advantage=grpo_no_std"]).loss.algorithm()
    # mean 0.75; grpo divides by the unbiased std sqrt(0.75 / 3) = 0.5 (+ eps 1e-6), grpo_no_std does not
    torch.testing.assert_close(preset.advantage(rewards, one_group).advantages,
                               torch.tensor([0.5, -1.5, 0.5, 0.5]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(replaced.advantage(rewards, one_group).advantages,
                               torch.tensor([0.25, -0.75, 0.25, 0.25]), rtol=1e-6, atol=1e-6)
    assert (replaced.preset.advantage, replaced.preset.term, replaced.preset.agg) == \
        ("grpo_no_std", "dapo_clip", "token_mean")

