"""Problem sets from the data config: the embedded task's splits, JSONL files, located row errors."""

import pytest

from conftest import write_jsonl
from retu.config import DataCfg
from retu.data.chat import format_user
from retu.engine.datasets import load_problem_sets, sft_dataset
from retu.engine.tokenizer import build_tokenizer
from retu.errors import RetuInputError

ROW = {"id": "r1", "problem": "Compute 1+2.", "answer": "3", "solution": "1+2=3\n\\boxed{3}"}


def _small(**kw):
    return DataCfg(arith_n_train=20, arith_n_val=10, arith_n_eval=15, **kw)


def test_arith_builds_three_disjoint_splits():
    sets = load_problem_sets(_small(), require_solution=True)
    assert (len(sets.train), len(sets.val), len(sets.eval)) == (20, 10, 15)
    multi = [{r["problem"] for r in rows if r["steps"] > 1} for rows in (sets.train, sets.val, sets.eval)]
    assert not (multi[0] & multi[1]) and not (multi[0] & multi[2]) and not (multi[1] & multi[2])
    assert sets == load_problem_sets(_small(), require_solution=True)  # seeded


def test_jsonl_train_without_val_or_eval_gives_empty_splits(tmp_path):
    sets = load_problem_sets(_small(train=str(write_jsonl(tmp_path / "t.jsonl", [ROW]))), require_solution=True)
    assert sets.train == [ROW] and sets.val == [] and sets.eval == []


def test_jsonl_train_with_arith_val_and_jsonl_eval(tmp_path):
    eval_rows = [{"problem": "Compute 2+2.", "answer": "4"}]  # no solution: fine for eval
    cfg = _small(train=str(write_jsonl(tmp_path / "t.jsonl", [ROW])), val="arith",
                 eval=str(write_jsonl(tmp_path / "e.jsonl", eval_rows)))
    sets = load_problem_sets(cfg, require_solution=True)
    assert len(sets.val) == 10 and sets.val[0]["id"].startswith("arith-val-")
    assert sets.eval == [{**eval_rows[0], "id": "e-1"}]


@pytest.mark.parametrize("field", ["train", "val"])
def test_row_without_solution_names_file_and_line(tmp_path, field):
    bad = str(write_jsonl(tmp_path / "bad.jsonl", [ROW, {"problem": "Q", "answer": "1"}]))
    paths = {"train": str(write_jsonl(tmp_path / "t.jsonl", [ROW])), field: bad}
    with pytest.raises(RetuInputError, match=r"bad\.jsonl:2: missing field 'solution'"):
        load_problem_sets(_small(train=paths["train"], val=paths.get("val")), require_solution=True)
    assert load_problem_sets(_small(train=paths["train"], val=paths.get("val")), require_solution=False)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(RetuInputError, match="nope.jsonl: no such file"):
        load_problem_sets(_small(train=str(tmp_path / "nope.jsonl")), require_solution=False)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(RetuInputError, match="empty.jsonl: data.train holds no rows"):
        load_problem_sets(_small(train=str(tmp_path / "empty.jsonl")), require_solution=False)


def test_sft_dataset_is_conversational_with_the_solution_as_assistant_turn():
    tokenizer = build_tokenizer()
    ds = sft_dataset([ROW], tokenizer)
    assert ds[0]["messages"] == [{"role": "user", "content": format_user(ROW["problem"])},
                                 {"role": "assistant", "content": ROW["solution"]}]
    text = tokenizer.apply_chat_template(ds[0]["messages"], tokenize=False)
    assert text.endswith(ROW["solution"] + "<|im_end|>\n")


def test_sft_dataset_errors():
    tokenizer = build_tokenizer()
    with pytest.raises(RetuInputError, match="row r2: missing field 'solution'"):
        sft_dataset([{"id": "r2", "problem": "Q", "answer": "1"}], tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(RetuInputError, match="has no chat template"):
        sft_dataset([ROW], tokenizer)
