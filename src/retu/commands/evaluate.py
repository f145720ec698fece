"""`retu eval`: pass@1 / avg@k of a model or checkpoint on math benchmarks, with saved completions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from retu.commands import check_positive

DATA_DIR_HELP = ("Read the benchmark JSONL files from this directory instead of the Hugging Face Hub (offline "
                 "machines; default $RETU_DATA_DIR).")


def _load_sets(names: list[str], data_dir: Path | None, limit: int | None, samples: int | None, seed: int) -> dict:
    """name -> (rows tagged with their group, samples per problem); gold answers checked up front."""
    from retu.data.io import validate_answers
    from retu.errors import RetuInputError
    from retu.tasks.arith import make_splits
    from retu.tasks.benchmarks import BENCHMARKS, load_benchmark

    sets = {}
    for name in names:
        if name == "arith":
            rows, k = make_splits(seed, 0, 0, 400)["eval"], 1
        elif name in BENCHMARKS:
            rows = [{**r, "group": name} for r in load_benchmark(name, data_dir=data_dir)]
            k = int(BENCHMARKS[name].metric.split("@")[1])  # pass@1 -> 1, avg@16 -> 16
        else:
            raise RetuInputError(f"unknown benchmark '{name}'; known: arith, {', '.join(BENCHMARKS)}")
        rows = rows if limit is None else rows[:limit]
        validate_answers(rows, f"benchmark {name}")
        sets[name] = (rows, samples or k)
    return sets


def _write_outputs(out: Path, model: str, result, settings: dict) -> None:
    from retu.data.io import write_jsonl
    from retu.metrics import JsonlLogger

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "completions.jsonl", result.records)
    step = re.search(r"step-(\d+)$", model.rstrip("/"))
    log = JsonlLogger(out / "metrics.jsonl", run_id=f"eval-{Path(model).name}")
    log.log("eval", step=int(step.group(1)) if step else 0, metrics=result.metrics(), model=model, settings=settings,
            sizes=result.sizes)


def evaluate_cmd(
    model: str = typer.Argument(None, help="Model: tiny:/base:<size>, smollm2-135m-instruct, a checkpoint dir or hub id."),
    benchmarks: str = typer.Option("gsm8k", "--benchmarks", help="Comma list: arith, gsm8k, math500, aime24, ..."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    limit: int = typer.Option(None, "--limit", help="Use the first N problems of each benchmark (a fixed subset)."),
    samples: int = typer.Option(None, "--samples", help="Samples per problem (default: 1, or k of a benchmark's avg@k)."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature (the paper: 0.7; 0 = greedy)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling threshold (the paper: 1.0)."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", help="Tokens generated per answer."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts per generation batch."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (and the arith task's split seed)."),
    engine: str = typer.Option("auto", "--engine", help="Generation engine: auto (vLLM on a CUDA machine with vllm "
                                "installed, paged on one without, hf on CPU), hf (transformers generate), paged "
                                "(transformers continuous batching) or vllm."),
    gpu_memory: float = typer.Option(0.9, "--gpu-memory", help="vLLM: share of the GPU's memory it may take."),
    out: Path = typer.Option(None, "--out", help="Write metrics.jsonl and completions.jsonl here."),
    rescore: Path = typer.Option(None, "--rescore", help="Score a saved completions.jsonl again instead of generating."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a model on math benchmarks with the math-verify reward."""
    from retu.engine.generators import choose_engine
    from retu.errors import RetuInputError

    if rescore is not None:
        from retu.eval import read_completions
        from retu.eval import rescore as rescore_records

        result = rescore_records(read_completions(rescore))
    else:
        if model is None:
            raise RetuInputError("give a MODEL to evaluate (or --rescore FILE)")
        check_positive(limit=limit, samples=samples, max_new_tokens=max_new_tokens, batch_size=batch_size)
        if not 0.0 < gpu_memory <= 1.0:
            raise RetuInputError(f"--gpu-memory must be in (0, 1], got {gpu_memory}")
        if temperature < 0:
            raise RetuInputError(f"--temperature must be >= 0, got {temperature}")
        if not 0.0 < top_p <= 1.0:
            raise RetuInputError(f"--top-p must be in (0, 1], got {top_p}")
        sets = _load_sets([b.strip() for b in benchmarks.split(",") if b.strip()], data_dir, limit, samples, seed)
        settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size)
        result = _generate_and_score(model, sets, settings, seed, choose_engine(engine), gpu_memory)
        if out is not None:
            _write_outputs(out, model, result, {"temperature": temperature, "top_p": top_p, "seed": seed,
                                                "max_new_tokens": max_new_tokens, "limit": limit})
    typer.echo(json.dumps(result.metrics()) if as_json else result.summary())


def _generate_and_score(model_name: str, sets: dict, settings: dict, seed: int, engine: str, gpu_memory: float):
    """Evaluate every set with vLLM or transformers (on the GPU when there is one); the results merged."""
    import torch
    from rich.progress import Progress

    from retu.engine.generators import open_engine
    from retu.eval import evaluate, merge_results

    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    opened = open_engine(model_name, engine, seed=seed, gpu_memory=gpu_memory, device=device)
    with opened as (model, tokenizer, generate_fn), Progress(transient=True) as bar:
        results = []
        for name, (rows, k) in sets.items():
            task = bar.add_task(f"eval {name}", total=len(rows))
            results.append(evaluate(model, tokenizer, rows, samples=k, generate_fn=generate_fn, **settings,
                                    progress=lambda n, task=task: bar.advance(task, n)))
    return merge_results(results)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate_cmd)
