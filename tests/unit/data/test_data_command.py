"""`retu data arith`: files, counts, determinism."""

import json
import re

from typer.testing import CliRunner

from conftest import cli_app
from retu.tasks.arith import make_splits, solve_problem


def test_arith_command_writes_three_splits(tmp_path):
    args = ["data", "arith", "--out", str(tmp_path), "--seed", "3", "--n-train", "50", "--n-val", "10",
            "--n-eval", "20", "--max-steps", "3"]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'train.jsonl'}: 50 problems, steps 1-3" in result.output
    expected = make_splits(3, 50, 10, 20, steps_train=(1, 2, 3), steps_eval=(1, 2, 3))
    for name in ("train", "val", "eval"):
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert rows == expected[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.jsonl", "train.jsonl", "val.jsonl"]


def test_bad_arguments_raise_input_errors_before_writing(tmp_path):
    from retu.errors import RetuInputError

    for args, message in [(["--max-steps", "0"], "--max-steps must be >= 1"), (["--ops", "+/"], "arith ops")]:
        result = CliRunner().invoke(cli_app(), ["data", "arith", "--out", str(tmp_path / "o"), *args])
        assert isinstance(result.exception, RetuInputError) and message in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_difficulty_and_noise_options(tmp_path):
    args = ["data", "arith", "--out", str(tmp_path), "--seed", "1", "--n-train", "40", "--n-val", "10", "--n-eval", "10",
            "--difficulty", "hard", "--noise", "0.25"]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'train.jsonl'}: 40 problems, steps 4-5, 10 with an expert error" in result.output
    assert f"{tmp_path / 'eval.jsonl'}: 10 problems, steps 1-5" in result.output
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert {r["steps"] for r in train} == {4, 5} and sum(bool(r.get("expert_error")) for r in train) == 10
    bad = CliRunner().invoke(cli_app(), ["data", "arith", "--out", str(tmp_path / "o"), "--difficulty", "medium"])
    assert "arith difficulty must be one of" in str(bad.exception) and not (tmp_path / "o").exists()


def test_sign_slip_option_writes_the_experts_systematic_error(tmp_path):
    args = ["data", "arith", "--out", str(tmp_path), "--n-train", "200", "--n-val", "10", "--n-eval", "10",
            "--sign-slip", "1.0"]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    slipped = [r for r in train if r.get("expert_error")]
    assert f"{tmp_path / 'train.jsonl'}: 200 problems, steps 1-5, {len(slipped)} with an expert error" in result.output
    # With p = 1 exactly the rows whose right solution reaches -5 or below are rewritten.
    reach = [r for r in train if any(int(v) <= -5 for v in re.findall(r"=(-?\d+)", solve_problem(r["problem"])))]
    assert slipped and [r["id"] for r in slipped] == [r["id"] for r in reach]
    assert all(r["solution"] == solve_problem(r["problem"]) for r in train if not r.get("expert_error"))


def test_slip_at_option_moves_the_slips_threshold(tmp_path):
    args = ["data", "arith", "--out", str(tmp_path), "--n-train", "200", "--n-val", "10", "--n-eval", "10",
            "--sign-slip", "1.0", "--slip-at", "-2"]
    assert CliRunner().invoke(cli_app(), args).exit_code == 0
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    reach = [r["id"] for r in train if any(int(v) <= -2 for v in re.findall(r"=(-?\d+)", solve_problem(r["problem"])))]
    assert reach == [r["id"] for r in train if r.get("expert_error")]
