"""Decontamination throughput: retu's `measure_contamination` against plain sentence-transformers.

Training pool: the first `--n` prompts of GSM8K train then MATH train (from `--data-dir`, default
$RETU_DATA_DIR: MATH train has no pinned Hub source);
references: GSM8K test and MATH500 (1819 problems). Both sides use the same all-MiniLM-L6-v2 model
object and batch size and do the whole job: embed the references, embed the pool, find each prompt's
nearest reference. retu embeds the pool in chunks with one matrix product per chunk; the plain side
embeds it in one `encode` call and searches with `sentence_transformers.util.semantic_search`. The
model is loaded once beforehand (load time is printed, not counted). Both must remove the same prompts.

    flock /tmp/retu-cpu.lock python benchmarks/bench_decontaminate.py --n 10000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer, util

from retu.curation.decontaminate import load_references, measure_contamination, resolve_embedding_model
from retu.tasks.benchmarks import load_benchmark

def load_pool(n: int, data_dir: Path | None) -> list[str]:
    """The first n prompts of GSM8K train followed by MATH train."""
    prompts = [r["problem"] for name in ("gsm8k_train", "math_train") for r in load_benchmark(name, data_dir=data_dir)]
    if n > len(prompts):
        raise SystemExit(f"--n {n}: the two training sets hold {len(prompts)} prompts")
    return prompts[:n]


def run_plain(model: SentenceTransformer, pool: list[str], refs: list[str], batch_size: int,
              threshold: float) -> tuple[float, list[int]]:
    """Seconds and removed indices with sentence-transformers alone (encode + semantic_search)."""
    start = time.perf_counter()
    ref_emb = model.encode(refs, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True)
    pool_emb = model.encode(pool, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True)
    hits = util.semantic_search(pool_emb, ref_emb, top_k=1)
    seconds = time.perf_counter() - start
    return seconds, [i for i, h in enumerate(hits) if h[0]["score"] > threshold]


def run_retu(model: SentenceTransformer, pool: list[str], refs: list[str], batch_size: int,
             threshold: float) -> tuple[float, list[int]]:
    """Seconds and removed indices with retu's chunked search over the same model."""

    def encode(texts):
        return model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True)

    result = measure_contamination(pool, refs, encode, threshold=threshold)
    return result.seconds, result.removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="Training prompts to decontaminate.")
    parser.add_argument("--batch-size", type=int, default=16, help="Texts per embedding forward pass.")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--data-dir", type=Path, default=None, help="Benchmark JSONL directory (else RETU_DATA_DIR).")
    parser.add_argument("--no-plain", action="store_true", help="Time retu only (halves the run time).")
    args = parser.parse_args()

    pool = load_pool(args.n, args.data_dir)
    refs = [r["problem"] for r in load_references(["gsm8k", "math500"], args.data_dir)]
    start = time.perf_counter()
    model = SentenceTransformer(resolve_embedding_model(None)[0], device="cpu", local_files_only=True)
    print(f"model load {time.perf_counter() - start:.1f} s; {torch.get_num_threads()} torch threads; "
          f"{len(pool)} prompts vs {len(refs)} references; batch {args.batch_size}")
    rows = [("retu measure_contamination", *run_retu(model, pool, refs, args.batch_size, args.threshold))]
    if not args.no_plain:
        rows.append(("sentence-transformers encode + semantic_search",
                     *run_plain(model, pool, refs, args.batch_size, args.threshold)))
    base = rows[-1][1]
    print(f"| method | prompts | seconds | prompts/s | removed | time ratio to {rows[-1][0].split()[0]} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, seconds, removed in rows:
        print(f"| {name} | {len(pool)} | {seconds:.1f} | {len(pool) / seconds:.1f} | {len(removed)} | "
              f"{seconds / base:.2f} |")
    if len(rows) == 2 and rows[0][2] != rows[1][2]:
        raise SystemExit(f"removed sets differ: retu {len(rows[0][2])}, plain {len(rows[1][2])}")


if __name__ == "__main__":
    main()
