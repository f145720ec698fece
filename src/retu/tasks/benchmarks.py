"""Math benchmark loaders by file path, and the registry that names them.

Each loader reads a JSONL file and returns problem rows `{"id", "problem", "answer", "solution",
"source", ...}` (DESIGN.md section 4). Files may be in retu's schema (../shared/data/benchmarks) or in
the upstream layouts: GSM8K `{"question", "answer": "...#### 72"}` and MATH `{"problem",
"solution"}` with the answer in the solution's last `\\boxed{}`.

GSM8K solutions become expert trajectories: `<<48/2=24>>` calculator notes are dropped and the final
`#### 72` line becomes `\\boxed{72}`, the format every retu prompt asks for (`retu.data.chat`).

To add a benchmark (AIME, Minerva, OlympiadBench, ...), give its file to `load_benchmark(name,
path=...)` under a registered name, or add one entry to BENCHMARKS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retu.data.io import iter_jsonl, to_problem_row
from retu.errors import RetuInputError, where
from retu.rewards.extract import extract_boxed

_CALC_NOTE = re.compile(r"<<.*?>>")
_FINAL = re.compile(r"^\s*####\s*(.+?)\s*$")


# ---------------------------------------------------------------------------------------------------
# GSM8K


def clean_gsm8k_solution(text: str) -> str:
    """GSM8K solution -> expert trajectory: no `<<...>>` notes, last line `\\boxed{N}`.

    Args:
        text: Raw GSM8K solution ending in a `#### N` line (thousands separators allowed).

    Returns:
        The cleaned solution; N without commas.

    Raises:
        ValueError: If there is no `#### N` line.

    Example:
        >>> print(clean_gsm8k_solution("48/2 = <<48/2=24>>24 in May.\\n#### 1,072"))
        48/2 = 24 in May.
        \\boxed{1072}
    """
    lines = _CALC_NOTE.sub("", text).rstrip().split("\n")
    final = _FINAL.match(lines[-1])
    if final is None:
        raise ValueError("GSM8K solution has no final '#### N' line")
    answer = final.group(1).replace(",", "")
    return "\n".join([*lines[:-1], f"\\boxed{{{answer}}}"])


def _gsm8k_row(raw: dict, loc: str) -> dict:
    """Map upstream GSM8K fields (question / answer-with-####) to retu's schema; clean the solution."""
    if "question" in raw:
        raw = {"problem": raw["question"], "solution": raw.get("answer"),
               **{k: v for k, v in raw.items() if k not in ("question", "answer")}}
    solution = raw.get("solution")
    if not isinstance(solution, str):
        raise RetuInputError(f"{loc}: missing field 'solution' (GSM8K needs the '#### N' line)")
    try:
        cleaned = clean_gsm8k_solution(solution)
    except ValueError:
        raise RetuInputError(f"{loc}: field 'solution' has no final '#### N' line") from None
    answer = raw.get("answer", extract_boxed(cleaned))
    return {**raw, "solution": cleaned, "answer": answer}


def load_gsm8k(path: str | Path) -> list[dict]:
    """GSM8K rows with solutions cleaned into expert trajectories ending in `\\boxed{answer}`."""
    path = Path(path)
    return [to_problem_row(_gsm8k_row(raw, where(path, n)), where(path, n),
                           default_id=f"{path.stem}-{n}", require_solution=True)
            for n, raw in iter_jsonl(path)]


# ---------------------------------------------------------------------------------------------------
# MATH-style sets (MATH500, MATH train, AIME, Minerva, OlympiadBench)


def load_math(path: str | Path) -> list[dict]:
    """MATH-style rows, solution as-is; a missing `answer` is the solution's last `\\boxed{}`."""
    path = Path(path)
    rows = []
    for n, raw in iter_jsonl(path):
        if "answer" not in raw and isinstance(raw.get("solution"), str):
            boxed = extract_boxed(raw["solution"])
            raw = raw if boxed is None else {**raw, "answer": boxed}
        rows.append(to_problem_row(raw, where(path, n), default_id=f"{path.stem}-{n}"))
    return rows


# ---------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Benchmark:
    """A named problem set.

    Attributes:
        filename: Default file name inside a benchmark data directory.
        load: Loader taking a path and returning problem rows.
        metric: Default metric: "pass@1" (one greedy sample) or "avg@k" (mean accuracy over k samples).
    """

    filename: str
    load: Callable[[Path], list[dict]]
    metric: str


BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark("gsm8k_test.jsonl", load_gsm8k, "pass@1"),
    "gsm8k_train": Benchmark("gsm8k_train.jsonl", load_gsm8k, "pass@1"),
    "math500": Benchmark("math500.jsonl", load_math, "pass@1"),
    "math_train": Benchmark("math_train.jsonl", load_math, "pass@1"),
    # Small sets are scored as the mean over 16 samples, as in the paper's evaluation.
    "aime24": Benchmark("aime24.jsonl", load_math, "avg@16"),
    "aime25": Benchmark("aime25.jsonl", load_math, "avg@16"),
    "amc23": Benchmark("amc23.jsonl", load_math, "avg@16"),
    "minerva": Benchmark("minerva.jsonl", load_math, "pass@1"),
    "olympiadbench": Benchmark("olympiadbench.jsonl", load_math, "pass@1"),
}


def load_benchmark(name: str, *, path: str | Path | None = None,
                   data_dir: str | Path | None = None) -> list[dict]:
    """Load a registered benchmark from `path`, or from `data_dir / <its default filename>`.

    Raises:
        RetuInputError: Unknown name (the message lists the known ones), no location, missing file.
    """
    if name not in BENCHMARKS:
        raise RetuInputError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    if path is None and data_dir is None:
        raise RetuInputError(f"benchmark {name!r}: give its file (path) or a data directory holding "
                             f"{bench.filename}")
    return bench.load(Path(path) if path is not None else Path(data_dir) / bench.filename)
