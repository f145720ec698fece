"""Benchmark loaders: the pinned Hub source (mocked), local files in retu's and upstream layouts."""

import json

import pytest

from conftest import SHARED, needs_shared
from retu.errors import RetuInputError
from retu.tasks import benchmarks
from retu.tasks.benchmarks import BENCHMARKS, clean_gsm8k_solution, load_benchmark

BENCH_DIR = SHARED / "data" / "benchmarks"


@pytest.fixture
def hub(monkeypatch):
    """datasets.load_dataset replaced by a dict of (repo, config, split, revision) -> rows; calls recorded."""
    import datasets

    tables, calls = {}, []

    def load_dataset(repo, config=None, *, split, revision):
        calls.append((repo, config, split, revision))
        if (repo, config, split, revision) not in tables:
            raise ConnectionError(f"Couldn't reach '{repo}' on the Hub (LocalEntryNotFoundError)")
        return tables[repo, config, split, revision]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv(benchmarks.DATA_DIR_ENV, raising=False)
    return tables, calls


def test_gsm8k_by_name_reads_the_pinned_hub_split(hub):
    tables, calls = hub
    src = BENCHMARKS["gsm8k"].hub
    tables[src.repo, src.config, src.split, src.revision] = [
        {"question": "Q?", "answer": "1+1 = <<1+1=2>>2\n#### 2"},
        {"question": "R?", "answer": "10*100 = <<10*100=1000>>1000\n#### 1,000"}]
    rows = load_benchmark("gsm8k")
    assert calls == [("openai/gsm8k", "main", "test", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c")]
    assert rows == [{"problem": "Q?", "solution": "1+1 = 2\n\\boxed{2}", "answer": "2", "id": "gsm8k-0"},
                    {"problem": "R?", "solution": "10*100 = 1000\n\\boxed{1000}", "answer": "1000", "id": "gsm8k-1"}]


def test_math500_from_the_hub_keeps_its_unique_id_and_answer(hub):
    tables, _ = hub
    src = BENCHMARKS["math500"].hub
    tables[src.repo, src.config, src.split, src.revision] = [
        {"problem": "P", "solution": "so $\\boxed{3}$", "answer": "3", "subject": "Algebra", "level": 2,
         "unique_id": "test/algebra/1.json"}]
    (row,) = load_benchmark("math500")
    assert (row["id"], row["answer"], row["level"]) == ("test/algebra/1.json", "3", 2)


def test_every_hub_source_is_pinned_to_a_commit():
    pinned = {name: b.hub for name, b in BENCHMARKS.items() if b.hub is not None}
    assert set(pinned) == {"gsm8k", "gsm8k_train", "math500", "aime24", "aime25"}
    assert all(len(s.revision) == 40 and int(s.revision, 16) >= 0 for s in pinned.values())


def test_hub_failure_is_one_line_naming_the_source_and_the_offline_way(hub):
    with pytest.raises(RetuInputError, match=r"^openai/gsm8k@cc7b047b:test: cannot load it from the Hugging Face "
                                             r"Hub \(Couldn't reach 'openai/gsm8k'.*\); on an offline machine give "
                                             r"--data-dir or RETU_DATA_DIR$"):
        load_benchmark("gsm8k")


def test_a_benchmark_without_a_hub_source_asks_for_a_local_file(hub):
    with pytest.raises(RetuInputError, match=r"benchmark 'minerva' has no pinned Hub source; give --data-dir "
                                             r"\(or RETU_DATA_DIR\) with minerva.jsonl"):
        load_benchmark("minerva")
    assert hub[1] == []


def test_data_dir_and_its_environment_variable_read_local_files(hub, tmp_path, monkeypatch):
    (tmp_path / "gsm8k_test.jsonl").write_text(json.dumps({"question": "Q?", "answer": "x\n#### 7"}) + "\n")
    assert load_benchmark("gsm8k", data_dir=tmp_path)[0]["answer"] == "7"
    monkeypatch.setenv(benchmarks.DATA_DIR_ENV, str(tmp_path))
    assert load_benchmark("gsm8k")[0]["id"] == "gsm8k_test-1"
    assert hub[1] == []  # the Hub is never asked when a local directory is given


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


def test_upstream_layouts_in_local_files(tmp_path):
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "Q?", "answer": "1+1 = <<1+1=2>>2\n#### 2"}) + "\n")
    assert load_benchmark("gsm8k", path=gsm) == [
        {"problem": "Q?", "solution": "1+1 = 2\n\\boxed{2}", "answer": "2", "id": "gsm-1"}]
    math = tmp_path / "aime.jsonl"
    math.write_text(json.dumps({"problem": "P", "solution": "so $\\boxed{\\frac{1}{2}}$"}) + "\n")
    assert load_benchmark("aime24", path=math)[0]["answer"] == "\\frac{1}{2}"


def test_gsm8k_row_without_final_line_names_file_and_field(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"problem": "Q", "solution": "x", "answer": "1"}) + "\n")
    with pytest.raises(RetuInputError, match=r"g\.jsonl:1: field 'solution'"):
        load_benchmark("gsm8k", path=path)


def test_registry_metrics_and_errors(tmp_path, hub):
    assert BENCHMARKS["aime24"].metric == "avg@16" and BENCHMARKS["math500"].metric == "pass@1"
    with pytest.raises(RetuInputError, match="unknown benchmark 'gsm9k'; known: gsm8k, gsm8k_train"):
        load_benchmark("gsm9k", data_dir=tmp_path)
    with pytest.raises(RetuInputError, match="aime24.jsonl: no such file"):
        load_benchmark("aime24", data_dir=tmp_path)


def _gsm8k_rows(n):
    return [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}"}
            for i in range(n)]


def test_retu_eval_gsm8k_from_the_mocked_hub_and_from_a_data_dir(hub, tmp_path):
    from typer.testing import CliRunner

    from conftest import cli_app
    from retu.data.io import iter_jsonl, write_jsonl

    tables, calls = hub
    src = BENCHMARKS["gsm8k"].hub
    tables[src.repo, src.config, src.split, src.revision] = _gsm8k_rows(5)
    args = ["eval", "tiny:1m", "--benchmarks", "gsm8k", "--limit", "3", "--max-new-tokens", "4", "--temperature", "0"]
    done = CliRunner().invoke(cli_app(), [*args, "--out", str(tmp_path / "hub")])
    assert done.exit_code == 0, done.output
    assert len(calls) == 1 and [r["id"] for _, r in iter_jsonl(tmp_path / "hub" / "completions.jsonl")] == [
        "gsm8k-0", "gsm8k-1", "gsm8k-2"]
    local = tmp_path / "bench"
    local.mkdir()
    write_jsonl(local / "gsm8k_test.jsonl", _gsm8k_rows(4))
    done = CliRunner().invoke(cli_app(), [*args, "--data-dir", str(local), "--out", str(tmp_path / "dir")])
    assert done.exit_code == 0, done.output
    assert len(calls) == 1  # the data directory was read, not the Hub
    (record,) = [r for _, r in iter_jsonl(tmp_path / "dir" / "metrics.jsonl") if r["kind"] == "eval"]
    assert record["sizes"] == {"gsm8k": 3}
