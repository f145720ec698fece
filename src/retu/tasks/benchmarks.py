"""Math benchmarks by name: from the Hugging Face Hub at a pinned revision, or from local JSONL files.

Each loader returns problem rows `{"id", "problem", "answer", "solution", "source", ...}` (DESIGN.md
section 4). `load_benchmark(name)` reads the benchmark's pinned Hub repository and revision through
`datasets.load_dataset` (cached as datasets caches everything); with `data_dir` (or the
`RETU_DATA_DIR` environment variable) it reads `<data_dir>/<filename>` instead, for offline machines.
Rows may be in retu's schema or in the upstream layouts: GSM8K `{"question", "answer": "...#### 72"}`
and MATH `{"problem", "solution"}` with the answer in the solution's last `\\boxed{}`.

GSM8K solutions become expert trajectories: `<<48/2=24>>` calculator notes are dropped and the final
`#### 72` line becomes `\\boxed{72}`, the format every retu prompt asks for (`retu.data.chat`).

To add a benchmark, give its file to `load_benchmark(name, path=...)` under a registered name, or add
one entry to BENCHMARKS (a row mapper, a file name, a metric and, when it is on the Hub, its source).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from retu.data.io import iter_jsonl, to_problem_row
from retu.errors import RetuInputError, where
from retu.rewards.extract import extract_boxed

DATA_DIR_ENV = "RETU_DATA_DIR"

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


def gsm8k_row(raw: dict, loc: str) -> dict:
    """Upstream GSM8K fields (question / answer-with-####) or retu's -> retu's schema, solution cleaned."""
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


# ---------------------------------------------------------------------------------------------------
# MATH-style sets (MATH500, MATH train, AIME, Minerva, OlympiadBench)


def math_row(raw: dict, loc: str) -> dict:
    """MATH-style fields, solution as-is; a missing `answer` is the solution's last `\\boxed{}`.

    MATH-500's `unique_id` (e.g. "test/precalculus/807.json") serves as the id when there is none.
    """
    if "id" not in raw and "unique_id" in raw:
        raw = {"id": raw["unique_id"], **raw}
    if "answer" not in raw and isinstance(raw.get("solution"), str):
        boxed = extract_boxed(raw["solution"])
        return raw if boxed is None else {**raw, "answer": boxed}
    return raw


# ---------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class HubSource:
    """A dataset split on the Hugging Face Hub, pinned to one commit of its repository.

    Attributes:
        repo: Dataset repository id, e.g. "openai/gsm8k".
        revision: The commit (40 hex digits) that is read.
        split: Split name inside the repository.
        config: Dataset configuration name, or None for the default one.
    """

    repo: str
    revision: str
    split: str
    config: str | None = None

    def label(self) -> str:
        """Short location for messages, e.g. `openai/gsm8k@cc7b047b:test`."""
        return f"{self.repo}@{self.revision[:8]}:{self.split}"


@dataclass(frozen=True)
class Benchmark:
    """A named problem set.

    Attributes:
        filename: File name inside a local benchmark directory (`data_dir`).
        row: Maps one raw row and its location to retu's row fields (before the schema check).
        metric: Default metric: "pass@1" (one sample) or "avg@k" (mean accuracy over k samples).
        hub: Where it is read when no local file is given; None when only local files serve.
        solutions: Every row must carry a solution (sets used as expert trajectories).
    """

    filename: str
    row: Callable[[dict, str], dict]
    metric: str
    hub: HubSource | None = None
    solutions: bool = False


_GSM8K = ("openai/gsm8k", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c")

BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark("gsm8k_test.jsonl", gsm8k_row, "pass@1", HubSource(*_GSM8K, "test", "main"), True),
    "gsm8k_train": Benchmark("gsm8k_train.jsonl", gsm8k_row, "pass@1", HubSource(*_GSM8K, "train", "main"), True),
    "math500": Benchmark("math500.jsonl", math_row, "pass@1",
                         HubSource("HuggingFaceH4/MATH-500", "ff5b20257d8185524591543f8ff5993951537bb8", "test")),
    "math_train": Benchmark("math_train.jsonl", math_row, "pass@1"),
    # Small sets are scored as the mean over 16 samples, as in the paper's evaluation.
    "aime24": Benchmark("aime24.jsonl", math_row, "avg@16",
                        HubSource("HuggingFaceH4/aime_2024", "2fe88a2f1091d5048c0f36abc874fb997b3dd99a", "train")),
    "aime25": Benchmark("aime25.jsonl", math_row, "avg@16",
                        HubSource("math-ai/aime25", "563bb8404243c5f09de6ec262f2db674fe5bce9b", "test")),
    "amc23": Benchmark("amc23.jsonl", math_row, "avg@16"),
    "minerva": Benchmark("minerva.jsonl", math_row, "pass@1"),
    "olympiadbench": Benchmark("olympiadbench.jsonl", math_row, "pass@1"),
}


def hub_rows(source: HubSource) -> Iterator[dict]:
    """The rows of a pinned Hub split, through `datasets.load_dataset` (and its cache).

    Raises:
        RetuInputError: The split cannot be loaded (offline with no cache, unknown revision, ...).
    """
    import datasets

    try:
        data = datasets.load_dataset(source.repo, source.config, split=source.split, revision=source.revision)
    except Exception as err:  # network, cache and repository errors all end the same way
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RetuInputError(f"{source.label()}: cannot load it from the Hugging Face Hub ({reason:.120}); "
                             f"on an offline machine give --data-dir or {DATA_DIR_ENV}") from None
    return iter(data)


def _rows(bench: Benchmark, located: Iterable[tuple[str, str, dict]]) -> list[dict]:
    """(location, default id, raw row) triples -> checked problem rows."""
    return [to_problem_row(bench.row(raw, loc), loc, default_id=default_id, require_solution=bench.solutions)
            for loc, default_id, raw in located]


def load_benchmark(name: str, *, path: str | Path | None = None,
                   data_dir: str | Path | None = None) -> list[dict]:
    """Load a registered benchmark: from `path`, from `data_dir / <its filename>`, or from the Hub.

    Args:
        name: A key of BENCHMARKS.
        path: A JSONL file holding the benchmark (retu's or the upstream layout).
        data_dir: A directory holding `<filename>`; default `$RETU_DATA_DIR`, else the pinned Hub source.

    Raises:
        RetuInputError: Unknown name (the message lists the known ones), a missing file, a row that
            does not fit the schema, a benchmark with no Hub source and no local file, a failed Hub load.
    """
    if name not in BENCHMARKS:
        raise RetuInputError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if path is not None or data_dir is not None:
        file = Path(path) if path is not None else Path(data_dir) / bench.filename
        return _rows(bench, ((where(file, n), f"{file.stem}-{n}", raw) for n, raw in iter_jsonl(file)))
    if bench.hub is None:
        raise RetuInputError(f"benchmark {name!r} has no pinned Hub source; give --data-dir (or {DATA_DIR_ENV}) "
                             f"with {bench.filename}")
    label = bench.hub.label()
    return _rows(bench, ((f"{label} row {n}", f"{name}-{n}", raw) for n, raw in enumerate(hub_rows(bench.hub))))
