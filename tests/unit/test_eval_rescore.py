"""`retu eval --rescore` agrees with calling math-verify directly; evaluate() shapes on a tiny model."""

import json
import subprocess
import sys

import pytest
from math_verify import parse, verify

from retu.data.io import write_jsonl
from retu.eval import evaluate, merge_results

CASES = [  # (gold, completion)
    ("18", "7+5=12\n12-3=9\n9+9=18\n\\boxed{18}"),
    ("18", "so the answer is \\boxed{17}"),
    ("\\frac{1}{2}", "half: \\boxed{\\frac{1}{2}}"),
    ("\\frac{1}{2}", "\\boxed{0.5}"),
    ("72", "no boxed answer at all"),
    ("3\\sqrt{2}", "\\boxed{\\sqrt{18}}"),
    ("-4", "\\boxed{-4}"),
    ("1072", "\\boxed{1,072}"),
]


def direct_score(gold: str, pred: str) -> float:
    # What a user would write with math-verify itself (a bare gold answer read as a boxed expression).
    return 1.0 if verify(parse("\\boxed{" + gold + "}"), parse(pred)) else 0.0


def test_rescore_matches_math_verify(tmp_path):
    records = [{"id": str(i), "group": "g" if i % 2 else "h", "answer": gold, "completions": [pred], "scores": [None]}
               for i, (gold, pred) in enumerate(CASES)]
    write_jsonl(tmp_path / "completions.jsonl", records)
    r = subprocess.run([sys.executable, "-m", "retu", "eval", "--rescore", tmp_path / "completions.jsonl", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    direct = [direct_score(g, p) for g, p in CASES]
    assert metrics["eval/overall"] == pytest.approx(100.0 * sum(direct) / len(direct))
    for group in ("g", "h"):
        idx = [i for i in range(len(CASES)) if ("g" if i % 2 else "h") == group]
        assert metrics[f"eval/{group}/pass@1"] == pytest.approx(100.0 * sum(direct[i] for i in idx) / len(idx))
    assert sum(direct) not in (0, len(direct))  # the cases really mix right and wrong answers


def test_evaluate_records_and_merge():
    from retu.engine.models import load_model

    model, tok = load_model("tiny:1m")
    rows = [{"id": f"p{i}", "problem": f"Compute {i}+1.", "answer": str(i + 1), "steps": 1} for i in range(3)]
    res = evaluate(model, tok, rows, max_new_tokens=4, temperature=1.0, samples=2)
    assert res.sizes == {"steps_1": 3} and len(res.records) == 3
    assert all(len(r["completions"]) == 2 and len(r["scores"]) == 2 for r in res.records)
    both = merge_results([res, evaluate(model, tok, [{**rows[0], "group": "other"}], max_new_tokens=2)])
    assert both.sizes == {"steps_1": 3, "other": 1}
    assert set(both.metrics()) == {"eval/steps_1/pass@1", "eval/other/pass@1", "eval/overall", "eval/se", "eval/n"}
    assert both.metrics()["eval/n"] == 4
