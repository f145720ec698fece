"""`retu data decontaminate` with the real all-MiniLM-L6-v2 (offline, from its PyPI package): planted
paraphrases of GSM8K test problems are caught, unrelated problems and GSM8K train problems pass."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the default model is a local directory; prove it

import pytest
from typer.testing import CliRunner

from conftest import SHARED, cli_app, needs_shared, read_jsonl

pytestmark = pytest.mark.integration

BENCH_DIR = SHARED / "data" / "benchmarks"

# Rewordings of GSM8K test problems: new wording, same story and numbers (what leaks into training
# sets). Each must be removed with its source as the nearest benchmark problem.
PARAPHRASES = {
    "gsm8k-test-0": "Every day Janet's ducks lay 16 eggs. She eats 3 of them for breakfast each morning and uses 4 "
                    "to bake muffins for her friends. She sells the rest at the farmers' market for $2 per egg. "
                    "How many dollars does she make each day at the market?",
    "gsm8k-test-2": "Josh wants to flip a house. He pays $80,000 for the house and spends $50,000 on repairs, which "
                    "raises the house's value by 150%. What is his profit?",
    "gsm8k-test-3": "James runs 3 sprints, 3 times every week, and each sprint is 60 meters long. How many meters "
                    "does he run in total each week?",
    "gsm8k-test-6": "Toulouse has two times as many sheep as Charleston, and Charleston has four times as many sheep "
                    "as Seattle. If Seattle has 20 sheep, how many sheep do the three cities have altogether?",
    "gsm8k-test-9": "For the first 40 hours she works each week, Eliza earns $10 an hour. Overtime is paid at 1.2 "
                    "times her normal hourly rate. Eliza worked 45 hours this week. How much did she earn?",
    "gsm8k-test-11": "At the bakery Toula bought 3 dozen donuts at $68 a dozen, 2 dozen mini cupcakes at $80 a dozen "
                     "and 6 dozen mini cheesecakes at $55 a dozen. What was the total cost?",
    "gsm8k-test-12": "Planting a lemon tree costs Carlos $90. The tree grows 7 lemons a year and he sells each lemon "
                     "for $1.5, while watering and feeding it costs $3 a year. After how many years will he start "
                     "making money from the tree?",
    "gsm8k-test-200": "Baldur draws water from a well: 5 pails each morning and 6 pails each afternoon. Each pail "
                      "holds 5 liters. How many liters of water does Baldur get per day?",
}

# Problems about other things; none may be removed.
UNRELATED = [
    "What is the area of a circle with radius 7 centimetres? Use 22/7 for pi.",
    "Solve for x: 3x - 7 = 2x + 5.",
    "A rectangle has a perimeter of 30 cm and a length of 9 cm. What is its width?",
    "How many positive divisors does 360 have?",
    "If f(x) = x^2 + 3x + 2, what is f(4)?",
    "A bag holds 4 red marbles and 6 blue marbles. What is the probability of drawing a red marble?",
    "Find the sum of the interior angles of a hexagon in degrees.",
    "The sum of two consecutive odd integers is 56. What is the larger integer?",
]


def _planted_set(tmp_path):
    train = read_jsonl(BENCH_DIR / "gsm8k_train.jsonl")[:200]
    planted = [{"id": f"para-{ref}", "problem": text, "answer": "0"} for ref, text in PARAPHRASES.items()]
    planted += [{"id": f"unrelated-{k}", "problem": text, "answer": "0"} for k, text in enumerate(UNRELATED)]
    rows = train[:100] + planted + train[100:]  # planted rows in the middle, not at an end
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


@needs_shared("data/benchmarks")
def test_paraphrases_are_removed_and_unrelated_problems_pass(tmp_path):
    src, rows = _planted_set(tmp_path)
    out = tmp_path / "clean" / "train.jsonl"
    result = CliRunner().invoke(cli_app(), ["data", "decontaminate", str(src), "--against", "gsm8k", "--data-dir",
                                         str(BENCH_DIR), "--out", str(out)])
    assert result.exit_code == 0, result.output
    removed = {r["id"]: r for r in read_jsonl(out.parent / "removed.jsonl")}
    for ref in PARAPHRASES:
        record = removed[f"para-{ref}"]
        assert record["nearest_id"] == ref and record["nearest_benchmark"] == "gsm8k"
        assert 0.8 < record["similarity"] <= 1.0
    assert not any(i.startswith("unrelated-") for i in removed)
    # Train problem 20 is test problem 632's template with other names and numbers (0.83): a real
    # near-duplicate. Train 130 (0.80) shares only its topic with test 1153, a false positive of MiniLM
    # at this threshold; no other of the 200 train problems comes within 0.8.
    train_removed = [i for i in removed if i.startswith("gsm8k-train-")]
    assert "gsm8k-train-20" in train_removed and len(train_removed) <= 2, train_removed
    kept = read_jsonl(out)
    assert kept == [r for r in rows if r["id"] not in removed]  # rows unchanged, order kept
    assert f"{len(rows)} prompts vs 1319 benchmark problems: {len(removed)} removed (gsm8k {len(removed)}), " \
           f"{len(kept)} kept" in result.output
    assert "prompts/s" in result.output


@needs_shared("data/benchmarks")
def test_exact_benchmark_copies_are_removed_at_any_threshold(tmp_path):
    test_rows = read_jsonl(BENCH_DIR / "math500.jsonl")[:5]
    own = tmp_path / "refs.jsonl"
    own.write_text("".join(json.dumps({"id": r["id"], "problem": r["problem"]}) + "\n" for r in test_rows[:3]))
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    out = tmp_path / "kept.jsonl"
    result = CliRunner().invoke(cli_app(), ["data", "decontaminate", str(src), "--against", str(own), "--out", str(out),
                                         "--threshold", "0.999"])
    assert result.exit_code == 0, result.output
    removed = read_jsonl(tmp_path / "removed.jsonl")
    assert [(r["id"], r["nearest_id"], r["nearest_benchmark"]) for r in removed] == \
        [(r["id"], r["id"], "refs") for r in test_rows[:3]]
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in test_rows[3:]]
