"""`retu flops`: FLOPs per token, per step and per run for a model and paradigm."""

from __future__ import annotations

import json

import typer


def flops(
    model: str = typer.Option(..., "--model", help="Preset (Qwen2.5-7B, Llama-3.2-3B), config.json or model directory."),
    paradigm: str = typer.Option("sft", "--paradigm", help="sft, grpo, dapo, luffy, srft or upt."),
    batch: int = typer.Option(..., "--batch", help="Sequences (SFT) or prompts (RL; DAPO: train batch) per step."),
    seq_len: float = typer.Option(..., "--seq-len", help="Mean total (prompt + response) length in tokens."),
    steps: int = typer.Option(1, "--steps", help="Number of optimizer steps in the run."),
    group_size: int = typer.Option(None, "--group-size", help="Samples per prompt G (default 8; luffy/srft 7)."),
    gen_batch: int = typer.Option(None, "--gen-batch", help="DAPO prompts per generation round (default 2 x batch)."),
    gen_rounds: float = typer.Option(None, "--gen-rounds", help="DAPO mean generation rounds per step K (default 2)."),
    expert_len: float = typer.Option(None, "--expert-len", help="Mean expert sequence length (luffy/srft/upt)."),
    sft_fraction: float = typer.Option(None, "--sft-fraction", help="UPT: share of prompts trained with SFT."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Estimate training compute with the paper's Appendix C formula."""
    from retu.flops import estimate_flops

    extra = {k: v for k, v in dict(group_size=group_size, gen_batch=gen_batch, gen_rounds=gen_rounds,
                                   expert_len=expert_len, sft_fraction=sft_fraction).items() if v is not None}
    est = estimate_flops(model, paradigm, batch=batch, seq_len=seq_len, steps=steps, **extra)
    typer.echo(json.dumps(est.to_dict()) if as_json else est.summary())


def register(app: typer.Typer) -> None:
    app.command("flops")(flops)
