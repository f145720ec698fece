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
