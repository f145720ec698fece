"""Statistics of problem sets, the columns of the paper's Table 3: size, mean prompt and response
lengths, and the mean win rate where rows carry one (`retu data difficulty`).

Lengths are counted on the raw texts (`problem`, `solution`), without the chat template. The unit is
either whitespace-separated words (the default, needing no model) or the tokens of a tokenizer; the
table's header names the unit, so the two are never confused.

Reference: arXiv 2512.11470, Table 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Count = Callable[[Sequence[str]], list[int]]
"""Texts [N] -> length of each [N] in the table's unit."""


def count_words(texts: Sequence[str]) -> list[int]:
    """Whitespace-separated words of each text.

    Example:
        >>> count_words(["What is 2 + 3?", " "])
        [5, 0]
    """
    return [len(t.split()) for t in texts]


def make_token_counter(tokenizer) -> Count:
    """A Count in the tokens of `tokenizer` (no special tokens added)."""

    def count(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []

    return count


def load_tokenizer(name: str):
    """The tokenizer of a model name as `retu.engine.models.load_model` accepts it.

    Tiny and base models share the built character tokenizer, and a hub id or directory loads only
    its tokenizer; SmolLM2 reads its tokenizer from the GGUF through `load_model`.
    """
    from retu.engine.models import SMOLLM2_NAME, load_model
    from retu.engine.tokenizer import build_tokenizer

    if name.partition(":")[0] in ("tiny", "base"):
        return build_tokenizer()
    if name == SMOLLM2_NAME:
        return load_model(name)[1]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


@dataclass(frozen=True)
class SetStats:
    """One row of the statistics table.

    Attributes:
        name: The set's label (its file name).
        rows: Number of problems.
        prompt_mean: Mean prompt length.
        response_mean: Mean length of the `solution` of rows that have one; None if none do.
        responses: Rows with a solution.
        win_rate_mean: Mean `win_rate` of rows that have one; None if none do.
        unit: "words" or "<tokenizer> tokens".
    """

    name: str
    rows: int
    prompt_mean: float
    response_mean: float | None
    responses: int
    win_rate_mean: float | None
    unit: str

    def to_dict(self) -> dict:
        """JSON-safe fields."""
        return dict(self.__dict__)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compute_stats(name: str, problems: Sequence[dict], *, count: Count = count_words,
                  unit: str = "words") -> SetStats:
    """Table 3 columns for problem rows (`problem`, optional `solution` and `win_rate`).

    Example:
        >>> rows = [{"problem": "Add 2 and 3.", "solution": "2+3=5 so \\\\boxed{5}", "win_rate": 1.0},
        ...         {"problem": "Compute 7-4.", "win_rate": 0.5}]
        >>> s = compute_stats("toy", rows)
        >>> s.rows, s.prompt_mean, s.response_mean, s.responses, s.win_rate_mean
        (2, 3.0, 3.0, 1, 0.75)
    """
    solutions = [p["solution"] for p in problems if isinstance(p.get("solution"), str)]
    win_rates = [p["win_rate"] for p in problems if isinstance(p.get("win_rate"), (int, float))]
    prompt_mean = _mean(count([p["problem"] for p in problems]))
    return SetStats(name, len(problems), prompt_mean if prompt_mean is not None else float("nan"),
                    _mean(count(solutions)), len(solutions), _mean(win_rates), unit)


def format_stats_table(stats: Sequence[SetStats]) -> str:
    """A Markdown table: set, rows, mean prompt and response lengths (unit in the header), win rate.

    Example:
        >>> print(format_stats_table([SetStats("a.jsonl", 2, 3.0, None, 0, 0.75, "words")]))
        | set | rows | prompt (mean words) | response (mean words) | win rate (mean) |
        | --- | ---: | ---: | ---: | ---: |
        | a.jsonl | 2 | 3.0 | - | 0.750 |
    """
    unit = stats[0].unit if stats else "words"  # one table, one counter
    lines = [f"| set | rows | prompt (mean {unit}) | response (mean {unit}) | win rate (mean) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for s in stats:
        response = "-" if s.response_mean is None else f"{s.response_mean:.1f}"
        win_rate = "-" if s.win_rate_mean is None else f"{s.win_rate_mean:.3f}"
        lines.append(f"| {s.name} | {s.rows} | {s.prompt_mean:.1f} | {response} | {win_rate} |")
    return "\n".join(lines)
