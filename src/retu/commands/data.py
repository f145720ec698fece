"""`retu data`: build and curate problem sets.

`arith` writes the embedded task's splits; `dedup`, `decontaminate` and `difficulty` curate a problem
set (each checks every input before writing anything); `expert` makes the one-trajectory-per-prompt set
that LUFFY / SRFT / UPT train on; `stats` prints the paper's Table 3 columns.
"""

from __future__ import annotations

from pathlib import Path

import typer

from retu.commands import check_positive
from retu.commands.evaluate import DATA_DIR_HELP
from retu.tasks.arith import SLIP_AT

data_app = typer.Typer(no_args_is_help=True, help="Build and curate problem sets.")


@data_app.command("arith")
def arith(
    out: Path = typer.Option(..., "--out", help="Directory for train.jsonl, val.jsonl and eval.jsonl."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same arguments give the same files."),
    n_train: int = typer.Option(5000, "--n-train", help="Training problems."),
    n_val: int = typer.Option(200, "--n-val", help="Validation problems (SFT validation loss)."),
    n_eval: int = typer.Option(800, "--n-eval", help="Evaluation problems."),
    max_steps: int = typer.Option(5, "--max-steps", help="Difficulty levels 1..max-steps (operations)."),
    operand_max: int = typer.Option(9, "--operand-max", help="Operands are drawn from 0..operand-max."),
    ops: str = typer.Option("+-", "--ops", help="Operations to draw from, a subset of '+-*'."),
    difficulty: str = typer.Option("uniform", "--difficulty", help="Training levels: uniform (1..max-steps), easy "
                                   "(the lowest 2/5) or hard (the highest 2/5); val and eval stay uniform."),
    noise: float = typer.Option(0.0, "--noise", help="Share of train and val trajectories with one wrong step."),
    sign_slip: float = typer.Option(0.0, "--sign-slip", help="Probability that the expert drops the minus sign of a "
                                    "running result of --slip-at or below (train and val)."),
    slip_at: int = typer.Option(SLIP_AT, "--slip-at", help="The negative running results (this or below) whose sign "
                                "the expert can drop."),
) -> None:
    """Write the arithmetic task's train / val / eval splits (no 2+-step problem in two splits)."""
    from retu.data.io import write_jsonl
    from retu.errors import RetuInputError
    from retu.tasks.arith import ArithConfig, difficulty_levels, make_splits

    check_positive(n_train=n_train, max_steps=max_steps, operand_max=operand_max)
    if n_val < 0 or n_eval < 0:
        raise RetuInputError(f"--n-val and --n-eval must be >= 0, got {n_val} and {n_eval}")
    levels = tuple(range(1, max_steps + 1))
    train_levels = difficulty_levels(difficulty, max_steps)
    splits = make_splits(seed, n_train, n_val, n_eval, steps_train=train_levels, steps_eval=levels,
                         cfg=ArithConfig(operand_max=operand_max, ops=ops), noise=noise, sign_slip=sign_slip,
                         slip_at=slip_at)
    for name, rows in splits.items():
        path = write_jsonl(out / f"{name}.jsonl", rows)
        shown = train_levels if name == "train" else levels
        wrong = sum(bool(r.get("expert_error")) for r in rows)
        typer.echo(f"{path}: {len(rows)} problems, steps {shown[0]}-{shown[-1]}"
                   + (f", {wrong} with an expert error" if wrong else ""))


IN_ARGUMENT = typer.Argument(..., metavar="IN", help="Problem set (JSONL of problem rows or chat rows).")


@data_app.command("dedup")
def dedup(
    input_path: Path = IN_ARGUMENT,
    out: Path = typer.Option(..., "--out", help="Where to write the kept rows (JSONL, rows unchanged)."),
) -> None:
    """Remove repeated prompts, exact or equal after normalisation; keep the first of each."""
    from retu.curation.dedup import dedup_prompts, read_prompt_set
    from retu.data.io import write_jsonl

    data = read_prompt_set(input_path)
    result = dedup_prompts(data.prompts)
    write_jsonl(out, [data.rows[i] for i in result.keep])
    typer.echo(f"{input_path}: {result.summary()} -> {out}")


@data_app.command("decontaminate")
def decontaminate(
    input_path: Path = IN_ARGUMENT,
    against: str = typer.Option(..., "--against", help="Comma list of benchmark names (gsm8k, math500, ...) "
                                "or JSONL paths."),
    out: Path = typer.Option(..., "--out", help="Where to write the kept rows; removed.jsonl goes beside it."),
    threshold: float = typer.Option(0.8, "--threshold", help="Remove prompts whose cosine similarity to a "
                                    "benchmark problem exceeds this, in (0, 1] (the paper: 0.8)."),
    model: str = typer.Option(None, "--model", help="Sentence-transformers model directory or hub id "
                              "(default: all-MiniLM-L6-v2 from its PyPI package, offline)."),
    data_dir: Path = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    batch_size: int = typer.Option(16, "--batch-size", help="Texts per embedding forward pass (on 2 CPU cores, 16 "
                                   "is ~15 percent faster than 64: small length-sorted batches pad less)."),
    device: str = typer.Option("cpu", "--device", help="Embedding device: cpu or cuda."),
) -> None:
    """Remove prompts too similar to benchmark problems (embedding cosine similarity)."""
    from collections import Counter

    from rich.progress import Progress

    from retu.curation.dedup import read_prompt_set
    from retu.curation.decontaminate import (check_threshold, describe_removed, load_encoder,
                                                load_references, measure_contamination)
    from retu.data.io import write_jsonl
    from retu.errors import RetuInputError

    check_threshold(threshold)
    check_positive(batch_size=batch_size)
    removed_path = out.parent / "removed.jsonl"
    if out.name == "removed.jsonl":
        raise RetuInputError("--out must not be named removed.jsonl (that file lists the removed rows)")
    data = read_prompt_set(input_path)
    refs = load_references([a.strip() for a in against.split(",") if a.strip()], data_dir)
    encode = load_encoder(model, batch_size=batch_size, device=device)
    with Progress(transient=True) as bar:
        task = bar.add_task("decontaminate", total=len(data.prompts))
        result = measure_contamination(data.prompts, [r["problem"] for r in refs], encode, threshold=threshold,
                                       progress=lambda n: bar.advance(task, n))
    removed = describe_removed(data.problems, refs, result)
    dropped = set(result.removed)
    write_jsonl(out, [row for i, row in enumerate(data.rows) if i not in dropped])
    write_jsonl(removed_path, removed)
    per_set = ", ".join(f"{k} {v}" for k, v in Counter(r["nearest_benchmark"] for r in removed).items())
    typer.echo(f"{input_path}: {len(data.rows)} prompts vs {len(refs)} benchmark problems: {len(removed)} removed"
               f"{f' ({per_set})' if per_set else ''}, {len(data.rows) - len(removed)} kept -> {out}")
    typer.echo(f"removed rows with their nearest benchmark problem and similarity -> {removed_path}")
    typer.echo(f"{result.prompts_per_s:.1f} prompts/s ({result.seconds:.1f} s, threshold {threshold})")


@data_app.command("difficulty")
def difficulty(
    input_path: Path = IN_ARGUMENT,
    model: str = typer.Option(..., "--model", help="Model: tiny:/base:<size>, smollm2-135m-instruct, a checkpoint "
                              "dir or hub id."),
    attempts: int = typer.Option(4, "--attempts", help="Sampled answers per prompt; the win rate is their mean score."),
    out: Path = typer.Option(..., "--out", help="Directory for all.jsonl (rows with win_rate), easy.jsonl, "
                             "hard.jsonl and uniform.jsonl."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", help="Tokens generated per answer."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (> 0; the paper: 1.0)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts per generation batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling and of the subset draws."),
    device: str = typer.Option("cpu", "--device", help="Generation device: cpu (float32) or cuda (bfloat16)."),
    engine: str = typer.Option("hf", "--engine", help="Generation engine: hf (transformers, on --device), paged "
                               "(transformers continuous batching, on --device), vllm (a CUDA GPU with vllm "
                               "installed; for large pools) or auto."),
) -> None:
    """Win rate of every prompt, and Easy (WR = 1), Hard (WR <= 0.25) and Uniform subsets of equal size."""
    import torch
    from rich.progress import Progress

    from retu.curation.dedup import read_prompt_set
    from retu.curation.difficulty import check_attempts, compute_win_rates, split_by_difficulty
    from retu.data.io import validate_answers, write_jsonl
    from retu.engine.generators import choose_engine, open_engine
    from retu.errors import RetuInputError

    check_attempts(attempts)
    check_positive(max_new_tokens=max_new_tokens, batch_size=batch_size)
    if temperature <= 0:
        raise RetuInputError(f"--temperature must be > 0 (win rates need sampled answers), got {temperature}")
    engine = choose_engine(engine)
    data = read_prompt_set(input_path)
    validate_answers(data.problems, input_path, line_numbers=data.lines)
    torch.manual_seed(seed)
    with open_engine(model, engine, seed=seed, device=device) as (lm, tokenizer, generate_fn), \
            Progress(transient=True) as bar:
        task = bar.add_task(f"difficulty ({attempts} attempts)", total=len(data.rows))
        win_rates, statuses = compute_win_rates(lm, tokenizer, data.problems, attempts=attempts,
                                                max_new_tokens=max_new_tokens, temperature=temperature,
                                                batch_size=batch_size, progress=lambda n: bar.advance(task, n),
                                                generate_fn=generate_fn)
    scored = [{**row, "win_rate": wr} for row, wr in zip(data.rows, win_rates)]
    splits = split_by_difficulty(win_rates, seed=seed)
    write_jsonl(out / "all.jsonl", scored)
    for name, indices in (("easy", splits.easy), ("hard", splits.hard), ("uniform", splits.uniform)):
        write_jsonl(out / f"{name}.jsonl", [scored[i] for i in indices])
    rated = [wr for wr in win_rates if wr is not None]
    mean = sum(rated) / len(rated) if rated else float("nan")
    typer.echo(f"{input_path}: {len(scored)} prompts x {attempts} attempts, mean win rate {mean:.3f}; "
               f"Easy pool {splits.easy_pool} (WR = 1), Hard pool {splits.hard_pool} (WR <= 0.25) -> {out}/all.jsonl")
    typer.echo(f"easy.jsonl, hard.jsonl, uniform.jsonl: {splits.size} rows each; math-verify statuses {statuses}")


@data_app.command("expert")
def expert(
    input_path: Path = IN_ARGUMENT,
    out: Path = typer.Option(..., "--out", help="Where to write the expert set (JSONL; rows gain expert_reward)."),
    tokenizer: str = typer.Option(..., "--tokenizer", help="The policy whose tokens count: tiny:1m, base:1m, "
                                  "smollm2-135m-instruct, a model dir or hub id."),
    max_response_len: int = typer.Option(..., "--max-response-len", help="Response token limit of the RL run "
                                         "(solution + EOS); longer trajectories are dropped."),
    keep_overlong: bool = typer.Option(False, "--keep-overlong", help="Keep trajectories over the limit (they "
                                       "train truncated) instead of dropping them."),
) -> None:
    """One expert trajectory per prompt for LUFFY / SRFT / UPT (the paper's MIX37K role)."""
    from retu.curation.dedup import read_prompt_set
    from retu.curation.stats import load_tokenizer
    from retu.data.expert import build_expert_set
    from retu.data.io import validate_answers, write_jsonl

    check_positive(max_response_len=max_response_len)
    data = read_prompt_set(input_path)
    validate_answers(data.problems, input_path, line_numbers=data.lines)
    rows, report = build_expert_set(data.problems, load_tokenizer(tokenizer), max_response_len,
                                    keep_overlong=keep_overlong, source=str(input_path))
    write_jsonl(out, rows)
    typer.echo(f"{input_path}: {report.summary()} -> {out}")


@data_app.command("stats")
def stats(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Problem sets (JSONL)."),
    tokenizer: str = typer.Option(None, "--tokenizer", help="Count tokens of this model's tokenizer (tiny:1m, "
                                  "smollm2-135m-instruct, a dir or hub id) instead of whitespace words."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per file instead of the table."),
) -> None:
    """Rows, mean prompt and response lengths and mean win rate of each file (the paper's Table 3)."""
    import json

    from retu.curation.dedup import read_prompt_set
    from retu.curation.stats import (compute_stats, count_words, format_stats_table, load_tokenizer,
                                        make_token_counter)

    sets = [(str(f), read_prompt_set(f).problems) for f in files]
    count, unit = (count_words, "words") if tokenizer is None else \
        (make_token_counter(load_tokenizer(tokenizer)), f"{tokenizer} tokens")
    table = [compute_stats(name, problems, count=count, unit=unit) for name, problems in sets]
    if as_json:
        for s in table:
            typer.echo(json.dumps(s.to_dict()))
    else:
        typer.echo(format_stats_table(table))


def register(app: typer.Typer) -> None:
    """Add the `data` sub-app to the root CLI."""
    app.add_typer(data_app, name="data")
