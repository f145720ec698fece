"""Expert data (`retu.data.expert`, `retu data expert`): overlong trajectories dropped and counted,
rejected answers kept and counted, clear errors."""

import pytest
from typer.testing import CliRunner

from conftest import cli_app, read_jsonl, write_jsonl
from retu.data.expert import build_expert_set, count_expert_tokens
from retu.engine.tokenizer import build_tokenizer
from retu.errors import RetuInputError

# The tiny tokenizer has one token per character: a solution of n characters is n + 1 tokens with EOS.
ROWS = [
    {"id": "ok", "problem": "Compute 2+3.", "answer": "5", "solution": "2+3=5\n\\boxed{5}"},  # 15 chars
    {"id": "long", "problem": "Compute 1+1.", "answer": "2", "solution": "1+1=2 " * 10 + "\\boxed{2}"},  # 69
    {"id": "wrong", "problem": "Compute 4+4.", "answer": "8", "solution": "4+4=9\n\\boxed{9}"},  # 15
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_lengths_count_solution_tokens_plus_eos(tokenizer):
    assert count_expert_tokens([r["solution"] for r in ROWS], tokenizer) == [16, 70, 16]


def test_overlong_dropped_and_rejected_kept_with_counts(tokenizer):
    rows, report = build_expert_set(ROWS, tokenizer, 32)
    assert [r["id"] for r in rows] == ["ok", "wrong"]
    assert [r["expert_reward"] for r in rows] == [1.0, 0.0]
    assert (report.total, report.kept, report.overlong, report.rejected) == (3, 2, 1, 1)
    assert report.overlong_ids == ("long",) and report.rejected_ids == ("wrong",)
    assert report.summary() == ("3 prompts: 2 kept, 1 longer than 32 tokens dropped (e.g. long), 1 with an answer "
                                "the verifier rejects (kept, as the authors did; e.g. wrong)")
    assert report.to_dict() == {"total": 3, "kept": 2, "overlong": 1, "rejected": 1, "max_response_len": 32,
                                "dropped_overlong": True}


def test_keep_overlong_scores_the_truncated_text(tokenizer):
    # Cut to 30 tokens the long solution loses its \boxed{2}: the verifier reads the last number, "2",
    # of "1+1=2 1+1=2 ..." -- still correct. Cut to 4 tokens ("1+1=") it reads 1: rejected.
    rows, report = build_expert_set(ROWS, tokenizer, 30, keep_overlong=True)
    assert [r["id"] for r in rows] == ["ok", "long", "wrong"] and report.overlong == 1
    assert rows[1]["expert_reward"] == 1.0
    rows, report = build_expert_set(ROWS[1:2], tokenizer, 4, keep_overlong=True)
    assert rows[0]["expert_reward"] == 0.0 and report.rejected == 1
    assert "1 longer than 4 tokens kept, truncated" in report.summary()


def test_errors_name_the_row_and_the_fix(tokenizer):
    with pytest.raises(RetuInputError, match=r"train.jsonl row 2 \(id b\): missing field 'solution'"):
        build_expert_set([ROWS[0], {"id": "b", "problem": "p", "answer": "1"}], tokenizer, 32, source="train.jsonl")
    with pytest.raises(RetuInputError, match="every expert trajectory is longer than 8 tokens"):
        build_expert_set(ROWS, tokenizer, 8)


def test_cli_writes_the_set_and_reports_counts(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "expert.jsonl"
    args = ["data", "expert", str(src), "--out", str(out), "--tokenizer", "tiny:1m", "--max-response-len", "32"]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    assert "3 prompts: 2 kept, 1 longer than 32 tokens dropped" in result.output
    rows = read_jsonl(out)
    assert [(r["id"], r["expert_reward"]) for r in rows] == [("ok", 1.0), ("wrong", 0.0)]
    bad = CliRunner().invoke(cli_app(), [*args[:-1], "0"])
    assert isinstance(bad.exception, RetuInputError) and "--max-response-len must be >= 1" in str(bad.exception)
