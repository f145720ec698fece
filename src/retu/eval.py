"""Accuracy of a model on problem sets with the math-verify reward (batched HF generation).

Prompts are the chat format of `retu.data.chat` (the same one SFT and RL train on). Each problem is
answered `samples` times; pass@1 is the mean score over samples (avg@k), per group (the arithmetic
task's number of steps, or a benchmark's name) and size-weighted over all groups (`overall`).
Scores are in percent. Completions are kept so any score can be re-checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from retu.data.chat import build_messages
from retu.distributed import gather, rank_block, world_and_rank
from retu.errors import RetuInputError, where
from retu.rewards import score_completions


@dataclass(frozen=True)
class EvalResult:
    """Per-group and overall pass@1 (%), group sizes, and per-problem records with completions.

    `se` is the standard error of `overall` in points over problems (the sd of the per-problem mean
    scores / sqrt(n)); with one greedy sample it is the binomial sqrt(p (1 - p) / n).
    """

    accuracy: dict[str, float]
    sizes: dict[str, int]
    overall: float
    records: list[dict] = field(repr=False)
    se: float = float("nan")

    def metrics(self) -> dict[str, float]:
        """Flat metric names for metrics.jsonl: eval/<group>/pass@1, eval/overall, its standard error
        eval/se and the number of problems eval/n."""
        out = {f"eval/{g}/pass@1": a for g, a in self.accuracy.items()}
        out["eval/overall"] = self.overall
        out["eval/se"] = self.se
        out["eval/n"] = sum(self.sizes.values())
        return out

    def summary(self) -> str:
        parts = [f"{g} {a:.1f}% (n={self.sizes[g]})" for g, a in self.accuracy.items()]
        return f"overall {self.overall:.1f}%: " + ", ".join(parts)


def group_of(row: dict) -> str:
    """Group name of a problem row: its `group` if set, `steps_<k>` for the arithmetic task, else its source."""
    if "group" in row:
        return str(row["group"])
    if "steps" in row:
        return f"steps_{row['steps']}"
    return str(row.get("source") or "all")


def render_prompts(tokenizer, rows: Sequence[dict], system_prompt: str | None = None) -> list[str]:
    """Chat-template text of each problem with the generation prompt appended."""
    return [tokenizer.apply_chat_template(build_messages(r, system_prompt=system_prompt), tokenize=False,
                                          add_generation_prompt=True) for r in rows]


def check_sampling(temperature: float, samples: int) -> None:
    """Greedy decoding (temperature 0) gives one completion per prompt.

    Raises:
        RetuInputError: temperature 0 with samples != 1.
    """
    if temperature == 0 and samples != 1:
        raise RetuInputError("greedy decoding (temperature 0) gives one completion per prompt; use temperature > 0 for samples > 1")


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, samples: int = 1, batch_size: int = 64, progress=None) -> list[list[str]]:
    """Complete each prompt `samples` times; returns [len(prompts)][samples] decoded completions.

    Greedy when temperature is 0 (then samples must be 1). Left padding, stop at the eos token.
    """
    check_sampling(temperature, samples)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start:start + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            kwargs = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else \
                {"do_sample": False}
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=samples,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **kwargs)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [texts[i * samples:(i + 1) * samples] for i in range(len(chunk))]
            if progress is not None:
                progress(len(chunk))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def evaluate(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int = 128, temperature: float = 0.0,
             top_p: float = 1.0, samples: int = 1, batch_size: int = 64, system_prompt: str | None = None,
             timeout_s: float = 5.0, progress=None, generate_fn=None) -> EvalResult:
    """Generate answers for problem rows and score them against `answer` with math-verify.

    Args:
        rows: problem rows ({"id", "problem", "answer", ...}); grouped by `group_of`.
        samples: completions per problem; pass@1 is their mean score (avg@k).
        progress: optional callable(n_done) for a progress bar.
        generate_fn: another engine with `generate`'s keyword arguments after the prompts (e.g.
            `retu.engine.generators.llm_generate_fn`); default transformers' generate on `model`.
    """
    check_sampling(temperature, samples)
    engine = generate_fn or partial(generate, model, tokenizer)
    completions = engine(render_prompts(tokenizer, rows, system_prompt), max_new_tokens=max_new_tokens,
                         temperature=temperature, top_p=top_p, samples=samples, batch_size=batch_size,
                         progress=progress)
    flat_pred = [c for cs in completions for c in cs]
    flat_gold = [r["answer"] for r in rows for _ in range(samples)]
    results = score_completions(flat_pred, flat_gold, timeout_s=timeout_s)
    return _aggregate(rows, completions, [r.score for r in results], samples)


def evaluate_distributed(model, tokenizer, rows: Sequence[dict], **kwargs) -> EvalResult:
    """`evaluate` with the problems shared out over the processes of a distributed run.

    Each process answers `shard_indices` of the rows (equal counts, so sharded models generate in
    step), the answers are gathered, and every process returns the result over all rows. Without a
    process group this is `evaluate`.

    Args:
        rows, **kwargs: as `evaluate`.
    """
    world, rank = world_and_rank()
    if world == 1:
        return evaluate(model, tokenizer, rows, **kwargs)
    mine, pad = shard_indices(len(rows), world, rank)
    part = evaluate(model, tokenizer, [rows[i] for i in mine + [0] * pad], **kwargs)
    answers = [(r["completions"], r["scores"]) for r in part.records[: len(mine)]]
    return merge_shards(rows, gather((mine, answers)), kwargs.get("samples", 1))


def shard_indices(count: int, world: int, rank: int) -> tuple[list[int], int]:
    """This process's `rank_block` of `count` rows, and how many filler rows bring every process to the
    same number (they are answered and dropped).

    >>> shard_indices(5, 2, 0), shard_indices(5, 2, 1)
    (([0, 1], 1), ([2, 3, 4], 0))
    """
    mine = list(range(count))[rank_block(count, world, rank)]
    return mine, -(-count // world) - len(mine)


def merge_shards(rows: Sequence[dict], shards: Sequence[tuple[list[int], list[tuple[list, list]]]],
                 samples: int) -> EvalResult:
    """The result over all `rows` from each process's (row indices, [(completions, scores)]).

    Raises:
        ValueError: The shards do not cover every row exactly once.
    """
    answers: dict[int, tuple[list, list]] = {}
    for indices, part in shards:
        answers.update(zip(indices, part))
    if sorted(answers) != list(range(len(rows))):
        raise ValueError(f"evaluation shards cover {len(answers)} of {len(rows)} rows")
    ordered = [answers[i] for i in range(len(rows))]
    return _aggregate(rows, [c for c, _ in ordered], [x for _, scores in ordered for x in scores], samples)


def _aggregate(rows, completions, flat_scores, samples: int) -> EvalResult:
    """Per-problem mean score over samples, then per-group and size-weighted overall pass@1 (%)."""
    records, totals, sizes = [], {}, {}
    for i, row in enumerate(rows):
        scores = flat_scores[i * samples:(i + 1) * samples]
        score = sum(s or 0.0 for s in scores) / samples  # gold answers are validated before evaluation
        g = group_of(row)
        totals[g] = totals.get(g, 0.0) + score
        sizes[g] = sizes.get(g, 0) + 1
        records.append({"id": row.get("id"), "group": g, "answer": row["answer"], "completions": completions[i],
                        "scores": scores})
    accuracy = {g: 100.0 * totals[g] / sizes[g] for g in sorted(totals)}
    overall = 100.0 * sum(totals.values()) / max(sum(sizes.values()), 1)
    return EvalResult(accuracy, sizes, overall, records, standard_error(problem_scores(records)))


def problem_scores(records: Sequence[dict]) -> list[float]:
    """Each problem's mean score over its samples (an unscored sample counts 0)."""
    return [sum(s or 0.0 for s in r["scores"]) / len(r["scores"]) for r in records]


def standard_error(scores: Sequence[float]) -> float:
    """Standard error (points) of the mean of per-problem scores in [0, 1]; NaN for fewer than 2.

    >>> round(standard_error([1.0, 0.0, 1.0, 0.0]), 2)
    28.87
    """
    n = len(scores)
    if n < 2:
        return float("nan")
    mean = sum(scores) / n
    return 100.0 * math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1) / n)


def read_completions(path: str | Path) -> list[dict]:
    """The records of a completions.jsonl written by `retu eval --out`, each checked for its fields.

    Raises:
        RetuInputError: The file is empty, or a line lacks group / answer or a list of completions.
    """
    from retu.data.io import iter_jsonl

    records = []
    for lineno, rec in iter_jsonl(path):
        for key in ("group", "answer", "completions"):
            if key not in rec:
                raise RetuInputError(f"{where(path, lineno)}: missing field '{key}' (a completions.jsonl "
                                     "from retu eval --out has group, answer, completions)")
        if not isinstance(rec["completions"], list) or not all(isinstance(c, str) for c in rec["completions"]):
            raise RetuInputError(f"{where(path, lineno)}: 'completions' must be a list of strings")
        records.append(rec)
    if not records:
        raise RetuInputError(f"{path}: no rows (the file is empty)")
    return records


def rescore(records: Sequence[dict], *, timeout_s: float = 5.0) -> EvalResult:
    """Score saved completions again (records as written by `retu eval`: group, answer, completions)."""
    samples = {len(r["completions"]) for r in records}
    if len(samples) != 1:
        raise RetuInputError("completions file: every record must hold the same number of completions")
    (k,) = samples
    results = score_completions([c for r in records for c in r["completions"]],
                                [r["answer"] for r in records for _ in range(k)], timeout_s=timeout_s)
    rows = [{"id": r.get("id"), "group": r["group"], "answer": r["answer"]} for r in records]
    return _aggregate(rows, [r["completions"] for r in records], [x.score for x in results], k)


def merge_results(results: Sequence[EvalResult]) -> EvalResult:
    """Combine evaluations of disjoint groups; overall is weighted by each group's size."""
    accuracy, sizes, records = {}, {}, []
    for r in results:
        accuracy.update(r.accuracy)
        sizes.update(r.sizes)
        records += r.records
    total = sum(sizes.values())
    overall = sum(accuracy[g] * sizes[g] for g in accuracy) / total if total else float("nan")
    return EvalResult(accuracy, sizes, overall, records, standard_error(problem_scores(records)))
