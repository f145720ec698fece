"""Win-rate aggregation, the Easy / Hard / Uniform splits and the difficulty command's bad input
(runs with models: tests/integration/test_curate_difficulty_models.py)."""

import pytest
from typer.testing import CliRunner

from conftest import cli_app
from retu.curation.difficulty import aggregate_win_rates, check_attempts, split_by_difficulty
from retu.errors import RetuInputError


def test_win_rate_is_the_mean_over_each_prompts_attempts():
    scores = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # 3 prompts x 4 attempts
    assert aggregate_win_rates(scores, 4) == [1.0, 0.25, 0.25]
    assert aggregate_win_rates([0.0, None, 1.0, 1.0], 2) == [None, 1.0]  # unparseable gold: no rate, not 0
    assert aggregate_win_rates([], 3) == []
    with pytest.raises(ValueError, match="not a multiple of 4"):
        aggregate_win_rates([1.0] * 6, 4)


def test_attempts_below_one_are_rejected():
    for attempts in (0, -2):
        with pytest.raises(RetuInputError, match=f"--attempts must be >= 1, got {attempts}"):
            check_attempts(attempts)
    assert check_attempts(1) == 1


def test_splits_have_the_size_of_the_smaller_pool_and_the_right_win_rates():
    # 6 easy (WR 1), 4 hard (WR 0 or 0.25), 5 in between, 1 unrated.
    rates = [1.0, 0.5, 0.0, 1.0, 0.25, 0.75, 1.0, 1.0, 0.5, 0.0, 1.0, 0.5, 0.25, 1.0, 0.75, None]
    s = split_by_difficulty(rates, seed=3)
    assert (s.easy_pool, s.hard_pool, s.size) == (6, 4, 4)
    assert len(s.easy) == len(s.hard) == len(s.uniform) == 4
    assert all(rates[i] == 1.0 for i in s.easy) and s.hard == [2, 4, 9, 12]  # the whole hard pool
    assert all(s_ == sorted(s_) for s_ in (s.easy, s.hard, s.uniform))  # file order
    assert 15 not in s.uniform and len(set(s.uniform)) == 4
    assert split_by_difficulty(rates, seed=3) == s  # seeded
    assert any(split_by_difficulty(rates, seed=k).uniform != s.uniform for k in range(4, 10))


def test_no_easy_prompt_gives_empty_subsets():
    s = split_by_difficulty([0.0, 0.25, 0.5], seed=0)
    assert (s.easy, s.hard, s.uniform, s.easy_pool, s.hard_pool) == ([], [], [], 0, 2)


@pytest.mark.parametrize("args, message", [
    (["--attempts", "0"], "--attempts must be >= 1, got 0"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
    (["--batch-size", "-1"], "--batch-size must be >= 1, got -1"),
])
def test_difficulty_command_bad_arguments_write_nothing(tmp_path, args, message):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "problem": "Compute 1+1.", "answer": "2"}\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app(), ["data", "difficulty", str(src), "--model", "tiny:1m", "--out", str(out),
                                         "--max-new-tokens", "4", *args])  # the last --max-new-tokens wins
    assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    (None, "in.jsonl: no such file"),
    ('{"id": "a", "answer": "2"}\n', "in.jsonl:1: missing field 'problem'"),
    ('{"id": "a", "problem": "Compute 1+1."}\n', "in.jsonl:1: missing field 'answer'"),
    ('{"id": "a", "problem": "A", "answer": "2"}\n\n{"id": "b", "problem": "B", "answer": "}{"}\n',
     "in.jsonl:3: field 'answer'"),  # math-verify cannot parse it; the blank line is counted
])
def test_difficulty_command_bad_rows_write_nothing(tmp_path, content, message):
    src = tmp_path / "in.jsonl"
    if content is not None:
        src.write_text(content)
    out = tmp_path / "out"
    # Few short attempts, so that a check that let bad input through would still fail fast.
    result = CliRunner().invoke(cli_app(), ["data", "difficulty", str(src), "--model", "tiny:1m", "--out", str(out),
                                         "--attempts", "1", "--max-new-tokens", "4"])
    assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
    assert not out.exists()
