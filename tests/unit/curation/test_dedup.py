"""`retu data dedup`: prompt normalisation, exact and normalised duplicate counts, the command, bad input."""

import doctest
import importlib
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import REPO_ROOT, SHARED, cli_app, needs_shared, read_jsonl, write_jsonl
from retu.curation.dedup import dedup_prompts, normalise_prompt, read_prompt_set
from retu.errors import RetuInputError

BENCH_DIR = SHARED / "data" / "benchmarks"


@pytest.mark.parametrize("name", ["retu.curation.dedup", "retu.curation.decontaminate",
                                  "retu.curation.difficulty", "retu.curation.stats"])
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("a, b", [
    ("What is 2+3?", "what is 2 + 3"),  # case, punctuation, spaces around an operator
    ("Tom has  5\n apples.", "Tom has 5 apples"),  # whitespace runs, final full stop
    ("He paid $1,000,000.", "He paid $1000000"),  # thousands separators
    ("It costs \\$2.50 each.", "It costs $2.5 each"),  # escaped dollar, trailing decimal zero
    ("Find $x$ if $3.0x = 6$.", "Find x if 3x=6"),  # math delimiters, 3.0 -> 3
    ("Compute $1{,}234 + 1$.", "Compute 1234+1"),  # LaTeX thousands separator
    ("Find $\\dfrac{1}{2}\\,x$.", "Find $\\frac{1}{2} x$."),  # \dfrac, thin space
    ("Evaluate $\\left( \\frac{a}{b} \\right)^2$.", "Evaluate $(\\frac{a}{b})^2$"),  # \left \right
    ("Janet\u2019s ducks", "Janet's ducks"),  # curly and straight apostrophes
])
def test_formatting_variants_normalise_equal(a, b):
    assert normalise_prompt(a) == normalise_prompt(b)


@pytest.mark.parametrize("a, b", [
    ("What is 2+3?", "What is 2-3?"),  # operators stay
    ("Multiply 1.5 by 2.", "Multiply 15 by 2."),  # a decimal point stays
    ("Multiply .5 by 2.", "Multiply 5 by 2."),
    ("The point (1,2).", "The point (12)."),  # a non-thousands comma between digits is a separator
    ("Compute $x^2$.", "Compute $x_2$."),
    ("Find $\\leftarrow$.", "Find $arrow$."),  # \left only as a whole command
])
def test_different_problems_stay_different(a, b):
    assert normalise_prompt(a) != normalise_prompt(b)


@needs_shared("data/benchmarks")
def test_gsm8k_sample_with_planted_duplicates_counts_exactly():
    rows = read_prompt_set(BENCH_DIR / "gsm8k_train.jsonl").problems[:300]
    prompts = [r["problem"] for r in rows]
    assert dedup_prompts(prompts).keep == list(range(300))  # no duplicates in the sample itself
    # Rows 177 ($20,000), 199 ($6,000), 275 ($30,000) and 278 (2,400 sq ft) have thousands separators.
    exact = [3, 177, 3, 250]  # 4 exact copies (row 3 twice)
    normalised = {
        0: prompts[0].upper(),
        10: "  " + prompts[10].replace(" ", "   ") + "\n",
        177: prompts[177].replace("$20,000", "$20000"),
        199: prompts[199].replace("$6,000", "$6000").replace(".", " ."),
        278: prompts[278].rstrip("?") + " ?!",
    }
    planted = prompts + [prompts[i] for i in exact] + list(normalised.values())
    result = dedup_prompts(planted)
    assert (result.exact, result.normalised, len(result.keep)) == (4, 5, 300)
    assert result.keep == list(range(300))
    assert result.duplicate_of == {**{300 + k: i for k, i in enumerate(exact)},
                                   **{304 + k: i for k, i in enumerate(normalised)}}
    assert result.summary() == "309 prompts: 4 exact duplicates, 5 normalised duplicates, 300 kept"


@needs_shared("data/benchmarks")
def test_math_train_normalised_duplicates_are_the_known_two():
    prompts = read_prompt_set(BENCH_DIR / "math_train.jsonl").prompts
    result = dedup_prompts(prompts)
    # Two MATH train problems appear twice, differing only in spacing and a trailing comma / newline.
    assert (result.exact, result.normalised, len(result.keep)) == (0, 2, 7496)
    for dup, first in result.duplicate_of.items():
        assert prompts[dup] != prompts[first] and normalise_prompt(prompts[dup]) == normalise_prompt(prompts[first])


def test_an_exact_copy_of_a_normalised_duplicate_points_to_the_first():
    result = dedup_prompts(["Add 2 and 3.", "ADD 2 AND 3", "ADD 2 AND 3"])
    assert result.keep == [0] and result.duplicate_of == {1: 0, 2: 0}
    assert (result.exact, result.normalised) == (1, 1)


def test_dedup_command_keeps_first_rows_unchanged(tmp_path):
    rows = [{"id": "a", "problem": "Add 2 and 3.", "answer": "5", "extra": [1]},
            {"messages": [{"role": "user", "content": "Add 4 and 4."},
                          {"role": "assistant", "content": "\\boxed{8}"}]},
            {"id": "c", "problem": "Add 2 and 3.", "answer": "5"},
            {"id": "d", "problem": "add 2 and 3", "answer": "5"},
            {"id": "e", "problem": "Add 2,000 and 3.", "answer": "2003"}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    result = CliRunner().invoke(cli_app(), ["data", "dedup", str(src), "--out", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    assert "5 prompts: 1 exact duplicates, 1 normalised duplicates, 3 kept" in result.output
    assert read_jsonl(tmp_path / "out.jsonl") == [rows[0], rows[1], rows[4]]  # chat row kept as a chat row


@pytest.mark.parametrize("rows, message", [
    (None, "no such file"),
    ([{"id": "a", "answer": "1"}], "in.jsonl:1: missing field 'problem'"),
    ([{"id": "a", "problem": "Add.", "answer": "1"}, {"id": "b", "problem": " ", "answer": "1"}],
     "in.jsonl:2: field 'problem' must be a non-empty string"),
])
def test_dedup_bad_input_raises_before_writing(tmp_path, rows, message):
    src = tmp_path / "in.jsonl" if rows is None else write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "o" / "out.jsonl"
    result = CliRunner().invoke(cli_app(), ["data", "dedup", str(src), "--out", str(out)])
    assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
    assert not out.parent.exists()


def test_cli_prints_one_line_and_exits_2(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "retu", "data", "dedup", str(tmp_path / "missing.jsonl"),
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"retu: error: {tmp_path / 'missing.jsonl'}: no such file"]
    assert not out.exists()
