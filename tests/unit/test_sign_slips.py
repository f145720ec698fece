"""benchmarks/sign_slips.py: shares of steps written right, without their minus sign, or wrong."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_counts_slipped_and_wrong_steps_by_kind(tmp_path):
    rows = [{"id": "a", "group": "steps_2", "answer": "-4",
             "completions": ["2-9=7\n7+3=10\n\\boxed{10}", "2-9=-7\n-7+3=-4\n\\boxed{-4}"]},
            {"id": "b", "group": "steps_3", "answer": "-8",
             "completions": ["0-8=-8\n-8-1=9\n9+1=10\n\\boxed{10}"]}]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sign_slips.py"), str(path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    # results <= -5: 2-9 (slipped, right), 0-8 (right), -8-1 = -9 written 9 (slipped); others: 7+3, -7+3, 9+1 right.
    assert out == [f"{path}: result <= -5: 4 steps: right 50.0%, slipped 50.0%, wrong 0.0%",
                   f"{path}: other steps: 3 steps: right 100.0%, slipped 0.0%, wrong 0.0%"]


def test_slip_at_moves_the_threshold_of_the_counted_steps(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text(json.dumps({"id": "a", "group": "steps_2", "answer": "-1",
                                "completions": ["2-6=4\n4+3=7\n\\boxed{7}"]}) + "\n")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sign_slips.py"), "--slip-at", "-3", str(path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    # 2-6 = -4 is at or below -3 and written without its sign; 4+3 = 7 is right from the written 4.
    assert out == [f"{path}: result <= -3: 1 steps: right 0.0%, slipped 100.0%, wrong 0.0%",
                   f"{path}: other steps: 1 steps: right 100.0%, slipped 0.0%, wrong 0.0%"]


def test_a_slip_at_that_is_not_negative_is_one_line(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text("")
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sign_slips.py"), "--slip-at", "2", str(path)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        "sign_slips: --slip-at must be negative (a running result the expert writes without its minus sign), got 2"]


def test_a_file_that_is_not_a_completions_file_is_one_line_naming_its_line(tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text('{"id": "a", "group": "steps_1", "answer": "1", "completions": ["1"]}\n{"id": "b"}\n')
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sign_slips.py"), str(path)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and run.stdout == ""
    message = (f"sign_slips: {path}:2: missing field 'group' (a completions.jsonl from retu eval --out has group, "
               "answer, completions)")
    assert run.stderr.strip().splitlines() == [message]
