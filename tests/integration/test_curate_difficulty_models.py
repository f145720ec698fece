"""`retu data difficulty` with real generation: the pre-trained tiny base model on the embedded
arithmetic task, and SmolLM2-135M-Instruct on a few GSM8K problems (short answers, few attempts)."""

import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from typer.testing import CliRunner

from conftest import SHARED, cli_app, needs_shared, read_jsonl

pytestmark = pytest.mark.integration

BENCH_DIR = SHARED / "data" / "benchmarks"
SUMMARY = re.compile(r"(\d+) prompts x (\d+) attempts, mean win rate ([\d.]+); Easy pool (\d+) \(WR = 1\), "
                     r"Hard pool (\d+) \(WR <= 0.25\)")


def _difficulty(src, out, *args):
    result = CliRunner().invoke(cli_app(), ["data", "difficulty", str(src), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.output


def _check_subsets(out, scored, output):
    """The summary's pools match all.jsonl; easy / hard / uniform hold min(pools) rows of the right kind."""
    rates = [r["win_rate"] for r in scored]
    n, _, mean, easy_pool, hard_pool = SUMMARY.search(output).groups()
    assert int(n) == len(scored) and float(mean) == pytest.approx(sum(rates) / len(rates), abs=1e-3)
    assert int(easy_pool) == rates.count(1.0) and int(hard_pool) == sum(r <= 0.25 for r in rates)
    subsets = {name: read_jsonl(out / f"{name}.jsonl") for name in ("easy", "hard", "uniform")}
    assert {len(rows) for rows in subsets.values()} == {min(int(easy_pool), int(hard_pool))}
    assert all(r["win_rate"] == 1.0 for r in subsets["easy"]) and all(r["win_rate"] <= 0.25 for r in subsets["hard"])
    assert all(r in scored for rows in subsets.values() for r in rows)
    return subsets


def test_base_model_on_one_step_arithmetic(tmp_path):
    result = CliRunner().invoke(cli_app(), ["data", "arith", "--out", str(tmp_path / "arith"), "--n-train", "16",
                                         "--n-val", "0", "--n-eval", "0", "--max-steps", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    src = tmp_path / "arith" / "train.jsonl"
    args = ["--model", "base:1m", "--attempts", "4", "--max-new-tokens", "24", "--seed", "0"]
    output = _difficulty(src, tmp_path / "a", *args)
    rows, scored = read_jsonl(src), read_jsonl(tmp_path / "a" / "all.jsonl")
    assert [{k: v for k, v in r.items() if k != "win_rate"} for r in scored] == rows  # rows kept as they were
    assert {r["win_rate"] for r in scored} <= {0.0, 0.25, 0.5, 0.75, 1.0}  # 4 attempts each
    assert SUMMARY.search(output).group(2) == "4"
    _check_subsets(tmp_path / "a", scored, output)
    # The same seed gives the same samples, hence the same win rates and subsets.
    _difficulty(src, tmp_path / "b", *args)
    for name in ("all", "easy", "hard", "uniform"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()


@needs_shared("data/benchmarks")
def test_smollm2_on_gsm8k_and_arithmetic(tmp_path):
    # 4 GSM8K problems (too long to finish in 64 tokens: Hard) and 4 one-step sums SmolLM2 often gets.
    rows = read_jsonl(BENCH_DIR / "gsm8k_test.jsonl")[:4]
    rows += [{"id": f"sum-{a}", "problem": f"Compute {a}+{a + 2}.", "answer": str(2 * a + 2)} for a in (1, 2, 3, 4)]
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = _difficulty(src, tmp_path / "out", "--model", "smollm2-135m-instruct", "--attempts", "2",
                         "--max-new-tokens", "64", "--batch-size", "8")
    scored = read_jsonl(tmp_path / "out" / "all.jsonl")
    assert [r["id"] for r in scored] == [r["id"] for r in rows]
    assert all(r["win_rate"] in (0.0, 0.5, 1.0) for r in scored)
    statuses = json.loads(re.search(r"math-verify statuses (\{.*\})", output).group(1).replace("'", '"'))
    assert sum(statuses.values()) == 16 and statuses["gold_unparsed"] == 0  # 8 prompts x 2 attempts
    subsets = _check_subsets(tmp_path / "out", scored, output)
    # Seed 0 gives 2 Easy sums (WR 1) and 5 Hard prompts here; at least one of each is near certain.
    assert len(subsets["easy"]) > 0
