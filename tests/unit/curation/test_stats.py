"""`retu data stats`: Table 3 columns in words and in tokens, on the shared benchmark files."""

import json

import pytest
from typer.testing import CliRunner

from conftest import SHARED, cli_app, needs_shared, read_jsonl
from retu.curation.stats import compute_stats, count_words, format_stats_table, make_token_counter
from retu.engine.tokenizer import build_tokenizer
from retu.errors import RetuInputError

BENCH_DIR = SHARED / "data" / "benchmarks"


@needs_shared("data/benchmarks")
def test_stats_of_gsm8k_test_in_words():
    rows = read_jsonl(BENCH_DIR / "gsm8k_test.jsonl")
    s = compute_stats("gsm8k", rows)
    assert (s.rows, s.responses, s.win_rate_mean, s.unit) == (1319, 1319, None, "words")
    assert s.prompt_mean == pytest.approx(sum(len(r["problem"].split()) for r in rows) / 1319)
    assert s.response_mean == pytest.approx(sum(len(r["solution"].split()) for r in rows) / 1319)
    assert 40 < s.prompt_mean < 60  # GSM8K questions are a few sentences


def test_character_tokenizer_counts_bytes():
    count = make_token_counter(build_tokenizer())  # one token per byte (retu.engine.tokenizer)
    texts = ["Compute 7+5-3.", "Janet\u2019s ducks", ""]
    assert count(texts) == [len(t.encode()) for t in texts]
    assert count([]) == []
    assert count_words(texts) == [2, 2, 0]


def test_win_rate_mean_only_over_rows_that_have_one():
    rows = [{"problem": "a b", "win_rate": 1.0}, {"problem": "c", "win_rate": 0.0}, {"problem": "d e f"}]
    s = compute_stats("x", rows)
    assert (s.rows, s.prompt_mean, s.response_mean, s.responses, s.win_rate_mean) == (3, 2.0, None, 0, 0.5)


@needs_shared("data/benchmarks")
def test_stats_command_prints_table_and_json(tmp_path):
    scored = tmp_path / "scored.jsonl"
    scored.write_text('{"id": "a", "problem": "Compute 1+1.", "answer": "2", "solution": "1+1=2 \\\\boxed{2}", '
                      '"win_rate": 0.75}\n'
                      '{"id": "b", "problem": "Compute 2+2 now.", "answer": "4", "win_rate": 0.25}\n')
    math500 = str(BENCH_DIR / "math500.jsonl")
    result = CliRunner().invoke(cli_app(), ["data", "stats", str(scored), math500])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| set | rows | prompt (mean words) | response (mean words) | win rate (mean) |"
    assert lines[2] == f"| {scored} | 2 | 2.5 | 2.0 | 0.500 |"
    assert lines[3].startswith(f"| {math500} | 500 | ") and lines[3].endswith(" | - |")
    result = CliRunner().invoke(cli_app(), ["data", "stats", str(scored), "--tokenizer", "tiny:1m", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.splitlines()[0])  # bytes: "Compute 1+1." 12, "1+1=2 \\boxed{2}" 15
    assert record == {"name": str(scored), "rows": 2, "prompt_mean": (12 + 16) / 2, "response_mean": 15.0,
                      "responses": 1, "win_rate_mean": 0.5, "unit": "tiny:1m tokens"}


def test_format_marks_missing_columns():
    table = format_stats_table([compute_stats("e", [])])
    assert table.splitlines()[2] == "| e | 0 | nan | - | - |"


def test_stats_command_bad_file_raises(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "answer": "1"}\n')
    for path, message in [(tmp_path / "none.jsonl", "none.jsonl: no such file"),
                          (bad, "bad.jsonl:1: missing field 'problem'")]:
        result = CliRunner().invoke(cli_app(), ["data", "stats", str(path)])
        assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
