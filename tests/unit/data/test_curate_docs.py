"""docs/scaling.md: every command in it parses, names files that exist and configs that load, and keeps
the paper's batch arithmetic; the accelerate launch configs are what the doc says they are."""

import re
import shlex

import pytest
import typer
import typer.main
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser
from typer.core import TyperGroup

from conftest import REPO_ROOT, cli_app
from retu.config import load_config

DOC = REPO_ROOT / "docs" / "scaling.md"
LAUNCH = REPO_ROOT / "configs" / "accelerate"


def _commands(prefix):
    """Lines of the doc's ```bash blocks that start with `prefix`."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(prefix)]


def _parse_retu(argv):
    """(command name, parsed parameters) of a retu command line, without running it."""
    cmd = typer.main.get_command(cli_app())
    ctx = cmd.make_context("retu", list(argv))
    while isinstance(cmd, TyperGroup):  # descend `retu data decontaminate ...` to its leaf command
        name, cmd, rest = cmd.resolve_command(ctx, ctx._protected_args + ctx.args)
        ctx = cmd.make_context(name, rest, parent=ctx)
    return cmd.name, ctx.params


@pytest.mark.parametrize("name, kind, extra", [
    ("ddp", "MULTI_GPU", {}),
    ("fsdp", "FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}),
    ("zero3", "DEEPSPEED", {"zero_stage": 3, "zero3_save_16bit_model": True}),
])
def test_launch_configs_load_with_accelerate(name, kind, extra):
    cfg = load_config_from_file(str(LAUNCH / f"{name}.yaml"))
    assert cfg.distributed_type.value == kind and cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
    sharding = cfg.fsdp_config if kind == "FSDP" else cfg.deepspeed_config
    assert {k: sharding[k] for k in extra} == extra


def test_doc_has_the_paper_recipes_under_every_launch_config():
    launches = _commands("accelerate launch")
    for name in ("ddp", "fsdp", "zero3"):
        assert any(f"configs/accelerate/{name}.yaml" in line for line in launches)
    assert any("sft_qwen2.5-7b_sft889k.yaml" in line for line in launches)
    assert any("dapo_dc_qwen2.5-7b.yaml" in line for line in launches)


@pytest.mark.parametrize("line", _commands("accelerate launch"))
def test_launch_commands_parse_and_their_configs_load(line):
    args = launch_command_parser().parse_args(shlex.split(line)[2:])
    assert args.module and args.training_script == "retu"
    launch = load_config_from_file(str(REPO_ROOT / args.config_file))
    processes = args.num_processes or launch.num_processes
    verb, config, *overrides = args.training_script_args
    assert verb in ("sft", "rl") and _parse_retu([verb, config, *overrides])[0] == verb
    cfg = load_config(REPO_ROOT / config, overrides)
    assert cfg.kind == verb
    if verb == "sft":
        # The paper's global batch of 512 sequences, micro-batch 4 per GPU, on any GPU count.
        assert cfg.optim.batch_size == 512 and cfg.optim.batch_size % (cfg.optim.grad_accum * processes) == 0
        assert cfg.optim.batch_size // (cfg.optim.grad_accum * processes) == 4
    else:
        # Whole prompt groups and generation rounds per process, micro-batches of the one-GPU recipe's 8 rows.
        o, r = cfg.optim, cfg.rollout
        assert o.batch_size % processes == 0 and r.gen_batch % processes == 0
        assert o.batch_size * r.group_size // processes // o.grad_accum == 8


@pytest.mark.parametrize("line", _commands("retu "))
def test_retu_commands_parse(line):
    argv = shlex.split(line)[1:]
    name, params = _parse_retu(argv)
    assert name == (argv[1] if argv[0] == "data" else argv[0])
    if argv[0] == "rl":
        assert load_config(REPO_ROOT / argv[1], argv[2:]).loss.algo == "dapo_dc"
    if name == "decontaminate":
        assert params["threshold"] == 0.8 and "math500" in params["against"]
