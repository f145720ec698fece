"""How often a model repeats the expert's slip: the share of its written steps that drop the minus sign.

Reads the completions that `retu eval --out DIR` saves on the embedded task and checks every step line
"a<op>b=c" against its own operands: for the steps whose right result is the slip's threshold
(`--slip-at`, the run's data.arith_slip_at; SLIP_AT = -5 by default) or below, the
share written right, written without the minus sign (the expert's slip, `retu.tasks.arith.slip_steps`)
and written otherwise wrong; the same for all other steps (which the expert never gets wrong). A model
trained on slipping trajectories that decodes greedily repeats the slip; RL with the verifier's reward
should remove it (docs/main_job.md, "An expert that slips").

    .venv/bin/retu eval runs/pipeline/seed-0/arith/checkpoints/step-800 --benchmarks arith --temperature 0 \\
        --max-new-tokens 64 --batch-size 400 --out /tmp/sft800
    .venv/bin/python benchmarks/sign_slips.py /tmp/sft800/completions.jsonl
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

from retu.errors import RetuInputError
from retu.eval import read_completions
from retu.tasks.arith import SLIP_AT, check_slip_at

STEP = re.compile(r"^(-?\d+)([+\-])(\d+)=(-?\d+)$")
OUTCOMES = ("right", "slipped", "wrong")


def classify(line: str, at: int = SLIP_AT) -> tuple[str, str] | None:
    """(kind, outcome) of one written step, or None if the line is not a step; kind "below" is a step
    whose right result is `at` or below.

    >>> classify("2-9=7"), classify("2-9=-7"), classify("3+4=8"), classify("\\\\boxed{7}")
    (('below', 'slipped'), ('below', 'right'), ('other', 'wrong'), None)
    """
    m = STEP.match(line.strip())
    if not m:
        return None
    a, op, b, got = int(m[1]), m[2], int(m[3]), int(m[4])
    right = a + b if op == "+" else a - b
    outcome = "right" if got == right else "slipped" if got == -right and right < 0 else "wrong"
    return ("below" if right <= at else "other"), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("completions", nargs="+", help="completions.jsonl files written by retu eval --out")
    parser.add_argument("--slip-at", type=int, default=SLIP_AT, help="the slip's threshold (data.arith_slip_at)")
    args = parser.parse_args()
    try:
        check_slip_at(args.slip_at, "--slip-at")
    except RetuInputError as err:
        sys.exit(f"sign_slips: {err}")
    for path in args.completions:
        try:
            rows = read_completions(path)
        except RetuInputError as err:
            sys.exit(f"sign_slips: {err}")
        counts: Counter = Counter()
        for row in rows:
            for text in row["completions"]:
                counts.update(filter(None, (classify(line, args.slip_at) for line in text.splitlines())))
        for kind, label in (("below", f"result <= {args.slip_at}"), ("other", "other steps")):
            n = sum(counts[kind, o] for o in OUTCOMES)
            shares = ", ".join(f"{o} {100 * counts[kind, o] / max(n, 1):.1f}%" for o in OUTCOMES)
            print(f"{path}: {label}: {n} steps: {shares}")


if __name__ == "__main__":
    main()
