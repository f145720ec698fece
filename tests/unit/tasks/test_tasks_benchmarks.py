"""Benchmark loaders on ../shared/data/benchmarks and on upstream file layouts."""

import json

import pytest

from conftest import SHARED, needs_shared
from retu.errors import RetuInputError
from retu.tasks.benchmarks import BENCHMARKS, clean_gsm8k_solution, load_benchmark, load_gsm8k, load_math

BENCH_DIR = SHARED / "data" / "benchmarks"


@needs_shared("data/benchmarks")
def test_gsm8k_train_first_row_becomes_an_expert_trajectory():
    row = load_benchmark("gsm8k_train", data_dir=BENCH_DIR)[0]
    assert row["id"] == "gsm8k-train-0" and row["answer"] == "72"
    assert row["solution"] == ("Natalia sold 48/2 = 24 clips in May.\n"
                               "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
                               "\\boxed{72}")


@needs_shared("data/benchmarks")
def test_gsm8k_test_rows_are_all_cleaned():
    rows = load_benchmark("gsm8k", data_dir=BENCH_DIR)
    assert len(rows) == 1319
    assert not any("<<" in r["solution"] or "####" in r["solution"] for r in rows)
    # The boxed last line agrees with the answer field for every row.
    assert all(r["solution"].endswith(f"\n\\boxed{{{r['answer']}}}") for r in rows)


@needs_shared("data/benchmarks")
def test_math500_keeps_solution_and_answer():
    rows = load_benchmark("math500", path=BENCH_DIR / "math500.jsonl")
    first = json.loads((BENCH_DIR / "math500.jsonl").open().readline())
    assert len(rows) == 500
    assert rows[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert rows[0]["solution"] == first["solution"]


def test_clean_gsm8k_solution_strips_notes_and_commas():
    assert clean_gsm8k_solution("2*500 = <<2*500=1000>>1,000 $.\n#### 1,000\n") == "2*500 = 1,000 $.\n\\boxed{1000}"
    with pytest.raises(ValueError, match="'#### N'"):
        clean_gsm8k_solution("no final line")


def test_upstream_layouts(tmp_path):
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "Q?", "answer": "1+1 = <<1+1=2>>2\n#### 2"}) + "\n")
    assert load_gsm8k(gsm) == [{"problem": "Q?", "solution": "1+1 = 2\n\\boxed{2}", "answer": "2", "id": "gsm-1"}]
    math = tmp_path / "aime.jsonl"
    math.write_text(json.dumps({"problem": "P", "solution": "so $\\boxed{\\frac{1}{2}}$"}) + "\n")
    assert load_math(math)[0]["answer"] == "\\frac{1}{2}"


def test_gsm8k_row_without_final_line_names_file_and_field(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"problem": "Q", "solution": "x", "answer": "1"}) + "\n")
    with pytest.raises(RetuInputError, match=r"g\.jsonl:1: field 'solution'"):
        load_gsm8k(path)


@needs_shared("data/benchmarks")
def test_registry_metrics_and_errors(tmp_path):
    assert BENCHMARKS["aime24"].metric == "avg@16" and BENCHMARKS["math500"].metric == "pass@1"
    with pytest.raises(RetuInputError, match="unknown benchmark 'gsm9k'; known: gsm8k, gsm8k_train"):
        load_benchmark("gsm9k", data_dir=BENCH_DIR)
    with pytest.raises(RetuInputError, match="aime24.jsonl: no such file"):
        load_benchmark("aime24", data_dir=tmp_path)
    with pytest.raises(RetuInputError, match="give its file"):
        load_benchmark("gsm8k")
