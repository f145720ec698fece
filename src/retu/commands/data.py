"""`retu data`: build and curate problem sets. `retu data arith` writes the embedded task's splits."""

from __future__ import annotations

from pathlib import Path

import typer

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
) -> None:
    """Write the arithmetic task's train / val / eval splits (no 2+-step problem in two splits)."""
    from retu.data.io import write_jsonl
    from retu.errors import RetuInputError
    from retu.tasks.arith import ArithConfig, make_splits

    if max_steps < 1:
        raise RetuInputError(f"--max-steps must be >= 1, got {max_steps}")
    levels = tuple(range(1, max_steps + 1))
    splits = make_splits(seed, n_train, n_val, n_eval, steps_train=levels, steps_eval=levels,
                         cfg=ArithConfig(operand_max=operand_max, ops=ops))
    for name, rows in splits.items():
        path = write_jsonl(out / f"{name}.jsonl", rows)
        typer.echo(f"{path}: {len(rows)} problems, steps 1-{max_steps}")


def register(app: typer.Typer) -> None:
    """Add the `data` sub-app to the root CLI."""
    app.add_typer(data_app, name="data")
