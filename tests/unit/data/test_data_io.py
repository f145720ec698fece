"""Problem-set JSONL: located errors, chat rows, atomic writes, gold validation."""

import json

import pytest

from retu.data import INSTRUCTION, format_user, read_problems, validate_answers, write_jsonl
from retu.data.io import atomic_write
from retu.errors import RetuInputError

GOOD = {"id": "a", "problem": "Compute 1+1.", "answer": "2", "solution": "1+1=2\n\\boxed{2}"}


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_reads_rows_keeping_extras_and_numbers(tmp_path):
    path = _write(tmp_path / "p.jsonl", [json.dumps({**GOOD, "steps": 1}), "",
                                         json.dumps({"problem": "Q", "answer": 72})])
    rows = read_problems(path)
    assert rows == [{**GOOD, "steps": 1}, {"problem": "Q", "answer": "72", "id": "p-3"}]


@pytest.mark.parametrize("line3, message", [
    ('{"problem": "Q"', "file.jsonl:3: invalid JSON"),
    ('[1, 2]', "file.jsonl:3: expected a JSON object, got list"),
    ('{"problem": "Q"}', "file.jsonl:3: missing field 'answer'"),
    ('{"answer": "1"}', "file.jsonl:3: missing field 'problem'"),
    ('{"problem": "  ", "answer": "1"}', "file.jsonl:3: field 'problem' must be a non-empty string"),
    ('{"problem": "Q", "answer": "1"}', "file.jsonl:3: missing field 'solution'"),
    ('{"messages": [{"role": "assistant", "content": "x"}]}', "file.jsonl:3: field 'messages' has no user"),
    ('{"messages": "hi"}', "file.jsonl:3: field 'messages' must be a list"),
])
def test_bad_line_names_file_line_and_field(tmp_path, line3, message):
    path = _write(tmp_path / "file.jsonl", [json.dumps(GOOD), json.dumps(GOOD), line3])
    with pytest.raises(RetuInputError) as err:
        read_problems(path, require_solution=True)
    assert str(err.value).startswith(f"{path.parent}/{message}")


def test_missing_file(tmp_path):
    with pytest.raises(RetuInputError, match="nope.jsonl: no such file"):
        read_problems(tmp_path / "nope.jsonl")


def test_chat_rows_become_problem_rows(tmp_path):
    chat = {"id": "c1", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": format_user("Compute 7+5.")},
        {"role": "assistant", "content": "7+5=12\n\\boxed{12}"}]}
    path = _write(tmp_path / "sft.jsonl", [json.dumps(chat)])
    assert read_problems(path, require_solution=True) == [
        {"id": "c1", "problem": "Compute 7+5.", "solution": "7+5=12\n\\boxed{12}", "answer": "12"}]
    assert INSTRUCTION not in read_problems(path)[0]["problem"]


def test_write_jsonl_round_trips(tmp_path):
    rows = [GOOD, {**GOOD, "id": "b", "problem": "Größe 1+1?"}]
    path = write_jsonl(tmp_path / "sub" / "out.jsonl", rows)
    assert path.read_text(encoding="utf-8").count("\n") == 2 and "Größe" in path.read_text(encoding="utf-8")
    assert read_problems(path) == rows


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = write_jsonl(tmp_path / "out.jsonl", [GOOD])
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_jsonl(path, [GOOD, {"bad": object()}])  # the second row cannot be serialized
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_crash_at_the_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    import os

    path = atomic_write(tmp_path / "report.md", "old")

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_validate_answers_names_the_line(tmp_path):
    rows = [GOOD, {**GOOD, "answer": "\\boxed{}"}]
    with pytest.raises(RetuInputError, match=r"x\.jsonl:2: field 'answer' '\\\\boxed{}' cannot be parsed"):
        validate_answers(rows, tmp_path / "x.jsonl")
    validate_answers([GOOD], tmp_path / "x.jsonl")  # a good set passes silently


def test_read_with_validation_counts_blank_lines(tmp_path):
    path = _write(tmp_path / "v.jsonl", [json.dumps(GOOD), "", json.dumps({**GOOD, "answer": "\\boxed{}"})])
    with pytest.raises(RetuInputError, match=r"v\.jsonl:3: field 'answer'"):
        read_problems(path, validate=True)
