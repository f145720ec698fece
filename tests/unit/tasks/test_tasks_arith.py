"""The embedded arithmetic task: problem text, expert solutions, and leak-free seeded splits."""

import random
import re
from itertools import combinations

import pytest

from retu.errors import RetuInputError
from retu.rewards import extract_boxed
from retu.tasks.arith import (
    ArithConfig,
    count_distinct,
    format_problem,
    generate_problem,
    make_splits,
    parse_problem,
    slip_steps,
    solve_problem,
)


def test_solver_writes_one_line_per_step_then_the_box():
    # DESIGN.md section 6: left to right with the running result on each line.
    assert solve_problem("Compute 7+5-3+9.") == "7+5=12\n12-3=9\n9+9=18\n\\boxed{18}"


def test_negative_running_results():
    assert solve_problem("Compute 3-5+1.") == "3-5=-2\n-2+1=-1\n\\boxed{-1}"


def test_multiplication_brackets_the_prefix_so_precedence_matches():
    assert format_problem([2, 3, 4], "+*") == "Compute (2+3)*4."
    assert solve_problem("Compute (2+3)*4.") == "2+3=5\n5*4=20\n\\boxed{20}"
    assert format_problem([2, 3, 4], "*+") == "Compute 2*3+4."
    rng = random.Random(0)
    cfg = ArithConfig(ops="+-*")
    for _ in range(200):
        row = generate_problem(rng, rng.randint(1, 6), cfg)
        # The text read with normal precedence equals the left-to-right answer.
        assert eval(row["problem"][len("Compute "):-1]) == int(row["answer"])


@pytest.mark.parametrize("text", ["Compute 2+3*4.", "Compute 7+5", "7+5.", "Compute 07+5.", "Compute 7++5."])
def test_non_canonical_text_is_rejected(text):
    with pytest.raises(RetuInputError, match="not an arith problem"):
        parse_problem(text)


def test_six_step_problem_is_seeded_and_complete():
    row = generate_problem(random.Random(3), 6)
    assert row == generate_problem(random.Random(3), 6)
    lines = row["solution"].split("\n")
    assert len(lines) == 7 and lines[-1] == f"\\boxed{{{row['answer']}}}"
    assert row["solution"] == solve_problem(row["problem"])
    assert parse_problem(row["problem"])[0] == [int(x) for x in row["problem"][8:-1].replace("-", "+").split("+")]
    assert row["steps"] == 6 and row["source"] == "arith"


def test_distinct_problem_counts():
    assert count_distinct(1) == 200  # 10 * 2 * 10
    assert count_distinct(2) == 4000
    assert count_distinct(1, ArithConfig(operand_max=99, ops="+-*")) == 100 * 3 * 100


@pytest.mark.parametrize("kwargs, message", [
    ({"ops": "+/"}, "arith ops"),
    ({"ops": "++"}, "arith ops"),
    ({"operand_min": 5, "operand_max": 2}, "arith operands"),
])
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(RetuInputError, match=message):
        ArithConfig(**kwargs)


@pytest.fixture(scope="module")
def splits():
    return make_splits(0, 1000, 100, 400)


def test_split_sizes_and_even_levels(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 1000, "val": 100, "eval": 400}
    assert [sum(r["steps"] == s for r in splits["eval"]) for s in range(1, 6)] == [80] * 5
    assert [r["id"] for r in splits["val"][:2]] == ["arith-val-0", "arith-val-1"]
    row = splits["train"][0]
    assert list(row) == ["id", "problem", "answer", "solution", "source", "steps", "instruction"]
    assert all(extract_boxed(r["solution"]) == r["answer"] for rows in splits.values() for r in rows)


def test_no_multi_step_problem_is_shared_or_repeated(splits):
    multi = {name: [r["problem"] for r in rows if r["steps"] >= 2] for name, rows in splits.items()}
    for name, problems in multi.items():
        assert len(problems) == len(set(problems)), name
    for a, b in combinations(multi, 2):
        assert not set(multi[a]) & set(multi[b]), (a, b)
    # 1-step problems (200 exist) are drawn in every split and may repeat.
    assert sum(r["steps"] == 1 for r in splits["train"]) == 200


def test_splits_are_deterministic_per_seed(splits):
    assert make_splits(0, 1000, 100, 400) == splits
    assert make_splits(1, 1000, 100, 400)["eval"] != splits["eval"]
    # eval is drawn first from its own stream: a bigger training set leaves it unchanged.
    assert make_splits(0, 3000, 100, 400)["eval"] == splits["eval"]


def test_custom_levels_and_too_many_unique_problems():
    out = make_splits(0, 30, 0, 12, steps_train=(1, 2), steps_eval=(6,))
    assert {r["steps"] for r in out["eval"]} == {6} and out["val"] == []
    tiny = ArithConfig(operand_max=1, ops="+")  # only 2**3 = 8 distinct 2-step problems
    with pytest.raises(RetuInputError, match="10 more unique 2-step problems requested but only 8 of 8"):
        make_splits(0, 0, 0, 10, steps_eval=(2,), cfg=tiny)
    with pytest.raises(RetuInputError, match="arith train split"):
        make_splits(0, 5, 0, 0, steps_train=(0, 1))


def test_a_slipped_sign_carries_on_to_the_box():
    # 2-9 = -7 is at or below -5: with p = 1 the expert writes 7 and goes on from it.
    assert slip_steps(random.Random(0), [2, 9, 3], "-+", 1.0) == ["2-9=7", "7+3=10", "\\boxed{10}"]
    # -4 is above the threshold and is never slipped; p = 0 is the plain solver.
    assert slip_steps(random.Random(0), [2, 6, 3], "-+", 1.0) == ["2-6=-4", "-4+3=-1", "\\boxed{-1}"]
    assert "\n".join(slip_steps(random.Random(0), [2, 9, 3], "-+", 0.0)) == solve_problem("Compute 2-9+3.")
    # With the threshold at -3, -4 slips too, and the chain goes on from the written 4; at -1, -1 slips.
    assert slip_steps(random.Random(0), [2, 6, 3], "-+", 1.0, at=-3) == ["2-6=4", "4+3=7", "\\boxed{7}"]
    assert slip_steps(random.Random(0), [2, 3, 0], "--", 1.0, at=-1) == ["2-3=1", "1-0=1", "\\boxed{1}"]


def test_sign_slips_change_train_and_val_at_their_rate_and_never_eval(splits):
    slipped = make_splits(0, 1000, 100, 400, sign_slip=0.7)
    assert slipped["eval"] == splits["eval"]
    for name in ("train", "val"):
        assert [r["problem"] for r in slipped[name]] == [r["problem"] for r in splits[name]]
        reach = [r for r in splits[name] if any(int(v) <= -5 for v in re.findall(r"=(-?\d+)", r["solution"]))]
        changed = [r for r in slipped[name] if r.get("expert_error")]
        assert all(r["answer"] == o["answer"] for r, o in zip(slipped[name], splits[name]))
        assert all(extract_boxed(r["solution"]) != r["answer"] for r in changed)
        # Every changed row reaches -5 or below in the right solution; each such row slips with p 0.7.
        assert {r["id"] for r in changed} <= {r["id"] for r in reach}
    reach = [r for r in splits["train"] if any(int(v) <= -5 for v in re.findall(r"=(-?\d+)", r["solution"]))]
    share = sum(bool(r.get("expert_error")) for r in slipped["train"]) / len(reach)
    assert 0.65 < share < 0.85  # p 0.7 at the first such result, more when a row has several
    with pytest.raises(RetuInputError, match="sign_slip .* must be in \\[0, 1\\], got 1.5"):
        make_splits(0, 10, 0, 0, sign_slip=1.5)


def test_a_higher_slip_threshold_rewrites_exactly_the_rows_that_reach_it(splits):
    slipped = make_splits(0, 1000, 100, 400, sign_slip=1.0, slip_at=-2)
    assert slipped["eval"] == splits["eval"]
    reach = [r["id"] for r in splits["train"] if any(int(v) <= -2 for v in re.findall(r"=(-?\d+)", r["solution"]))]
    changed = [r["id"] for r in slipped["train"] if r.get("expert_error")]
    assert changed == reach and len(reach) > len([r for r in splits["train"] if any(
        int(v) <= -5 for v in re.findall(r"=(-?\d+)", r["solution"]))])
    with pytest.raises(RetuInputError, match=r"arith slip_at must be negative \(a running result .*\), got 0"):
        make_splits(0, 10, 0, 0, sign_slip=0.5, slip_at=0)
