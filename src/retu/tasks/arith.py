"""The embedded synthetic task: multi-step integer arithmetic, solved step by step (DESIGN.md section 6).

A problem is a chain of single-digit operands joined by operations and evaluated left to right:
"Compute 7+5-3+9." The expert trajectory writes one line per operation with the running result and
ends in the boxed answer, so the math-verify reward serves unchanged::

    7+5=12
    12-3=9
    9+9=18
    \\boxed{18}

Difficulty is the number of operations (`steps`). Negative running results are allowed. With
multiplication in `ops`, the problem text brackets the running prefix so that the usual precedence
gives the same value as the left-to-right steps ("Compute (2+3)*4.").

Splits: with the defaults there are only 200 distinct 1-step problems, so 1-step problems are drawn
independently in every split (1-step accuracy is never held out); every problem of 2+ steps is unique
across train, validation and eval. Each split has its own seeded random stream and eval is drawn
first, so the eval set of a seed does not change when the training set grows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from retu.errors import RetuInputError

SOURCE = "arith"
# The task's problems say what to do and its trajectories end in \boxed{}, so its rows carry no
# instruction line (`retu.data.chat`): a third of the tokens of a prompt, saved in every pass.
INSTRUCTION = ""
_PREFIX = "Compute "
_TOKEN = re.compile(r"\d+|[+\-*]")
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@dataclass(frozen=True)
class ArithConfig:
    """What problems look like; the defaults are the task that trains on 2 CPU cores.

    Attributes:
        operand_min: Smallest operand (>= 0).
        operand_max: Largest operand.
        ops: Operations to draw from, a subset of "+-*".
    """

    operand_min: int = 0
    operand_max: int = 9
    ops: str = "+-"

    def __post_init__(self):
        if not 0 <= self.operand_min <= self.operand_max:
            raise RetuInputError(f"arith operands: need 0 <= operand_min <= operand_max, got "
                                 f"{self.operand_min}..{self.operand_max}")
        if not self.ops or set(self.ops) - set(_APPLY) or len(set(self.ops)) != len(self.ops):
            raise RetuInputError(f"arith ops: need distinct characters from '+-*', got {self.ops!r}")


# ---------------------------------------------------------------------------------------------------
# One problem


def format_problem(operands: Sequence[int], ops: Sequence[str]) -> str:
    """Problem text for a chain, e.g. ([7, 5, 3, 9], "+-+") -> "Compute 7+5-3+9."."""
    expr, additive = str(operands[0]), False
    for op, b in zip(ops, operands[1:]):
        if op == "*" and additive:
            # Brackets keep standard precedence equal to left-to-right evaluation.
            expr, additive = f"({expr})", False
        additive = additive or op in "+-"
        expr += f"{op}{b}"
    return f"{_PREFIX}{expr}."


def parse_problem(text: str) -> tuple[list[int], list[str]]:
    """Operands and ops of a problem written by `format_problem`.

    Raises:
        RetuInputError: If `text` is not a problem in the canonical form.
    """
    body = text[len(_PREFIX):-1] if text.startswith(_PREFIX) and text.endswith(".") else ""
    tokens = _TOKEN.findall(body.replace("(", "").replace(")", ""))
    operands, ops = [int(t) for t in tokens[0::2] if t.isdigit()], tokens[1::2]
    if not tokens or len(operands) != len(ops) + 1 or format_problem(operands, ops) != text:
        raise RetuInputError(f"not an arith problem in canonical form: {text!r}")
    return operands, ops


def solve_steps(operands: Sequence[int], ops: Sequence[str]) -> list[str]:
    """Expert trajectory lines: one "a<op>b=c" line per operation, then "\\boxed{answer}"."""
    value, lines = operands[0], []
    for op, b in zip(ops, operands[1:]):
        new = _APPLY[op](value, b)
        lines.append(f"{value}{op}{b}={new}")
        value = new
    return [*lines, f"\\boxed{{{value}}}"]


def solve_problem(text: str) -> str:
    """Expert solution of a problem text.

    Example:
        >>> print(solve_problem("Compute 7+5-3+9."))
        7+5=12
        12-3=9
        9+9=18
        \\boxed{18}
    """
    return "\n".join(solve_steps(*parse_problem(text)))


def corrupt_steps(rng: random.Random, operands: Sequence[int], ops: Sequence[str]) -> list[str]:
    """Expert trajectory with one wrong step, as real expert data has: one operation's result is off by
    1 or 2, and the later steps and the boxed answer carry the error on.

    >>> corrupt_steps(random.Random(0), [7, 5, 3], "+-")
    ['7+5=12', '12-3=11', '\\\\boxed{11}']
    """
    wrong = rng.randrange(len(ops))
    value, lines = operands[0], []
    for i, (op, b) in enumerate(zip(ops, operands[1:])):
        new = _APPLY[op](value, b) + (rng.choice((-2, -1, 1, 2)) if i == wrong else 0)
        lines.append(f"{value}{op}{b}={new}")
        value = new
    return [*lines, f"\\boxed{{{value}}}"]


SLIP_AT = -5  # by default, running results at or below this are the ones the expert can write without their sign


def check_slip_at(value: int, name: str) -> None:
    """Raise RetuInputError unless the slip threshold `value` (given as `name`) is negative."""
    if value >= 0:
        raise RetuInputError(f"{name} must be negative (a running result the expert writes without its minus "
                             f"sign), got {value}")


def slip_steps(rng: random.Random, operands: Sequence[int], ops: Sequence[str], p: float,
               at: int = SLIP_AT) -> list[str]:
    """Expert trajectory with a systematic error: a running result of `at` or below is written
    without its minus sign with probability `p` (one draw per such result), and the later steps and
    the boxed answer go on from the written value. Greedy decoding imitates the expert's majority
    choice, so with `p` > 0.5 a model trained on these trajectories keeps the error; a verifier's
    reward can remove it.

    >>> slip_steps(random.Random(0), [1, 8, 2], "-+", 1.0)
    ['1-8=7', '7+2=9', '\\\\boxed{9}']
    """
    value, lines = operands[0], []
    for op, b in zip(ops, operands[1:]):
        new = _APPLY[op](value, b)
        if new <= at and rng.random() < p:
            new = -new
        lines.append(f"{value}{op}{b}={new}")
        value = new
    return [*lines, f"\\boxed{{{value}}}"]


def answer_of(operands: Sequence[int], ops: Sequence[str]) -> int:
    """Value of the chain evaluated left to right."""
    value = operands[0]
    for op, b in zip(ops, operands[1:]):
        value = _APPLY[op](value, b)
    return value


def generate_problem(rng: random.Random, steps: int, cfg: ArithConfig = ArithConfig()) -> dict:
    """Draw one problem of `steps` operations as a row without id: problem, answer, solution, source,
    steps and instruction ("", see INSTRUCTION)."""
    if steps < 1:
        raise RetuInputError(f"arith steps must be >= 1, got {steps}")
    operands = [rng.randint(cfg.operand_min, cfg.operand_max) for _ in range(steps + 1)]
    ops = [rng.choice(cfg.ops) for _ in range(steps)]
    return {"problem": format_problem(operands, ops), "answer": str(answer_of(operands, ops)),
            "solution": "\n".join(solve_steps(operands, ops)), "source": SOURCE, "steps": steps,
            "instruction": INSTRUCTION}


def count_distinct(steps: int, cfg: ArithConfig = ArithConfig()) -> int:
    """Number of distinct problems with `steps` operations (200 for 1 step with the defaults)."""
    n_operands = cfg.operand_max - cfg.operand_min + 1
    return n_operands ** (steps + 1) * len(cfg.ops) ** steps


# ---------------------------------------------------------------------------------------------------
# Splits


def _level_counts(n: int, levels: Sequence[int]) -> list[int]:
    """Split `n` rows evenly over difficulty levels, the remainder to the first levels."""
    return [n // len(levels) + (i < n % len(levels)) for i in range(len(levels))]


def _draw_level(rng: random.Random, steps: int, n: int, cfg: ArithConfig,
                taken: dict[int, set[str]]) -> list[dict]:
    """`n` problems of one level; 2+-step problems are unique and not yet in `taken` (updated)."""
    if steps == 1:
        return [generate_problem(rng, 1, cfg) for _ in range(n)]
    seen = taken.setdefault(steps, set())
    space = count_distinct(steps, cfg)
    if n > space - len(seen):
        raise RetuInputError(f"arith: {n} more unique {steps}-step problems requested but only "
                             f"{space - len(seen)} of {space} remain; lower the split sizes or widen "
                             f"the operand range")
    rows: list[dict] = []
    while len(rows) < n:
        row = generate_problem(rng, steps, cfg)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    return rows


def make_split(rng: random.Random, n: int, levels: Sequence[int], cfg: ArithConfig,
               taken: dict[int, set[str]], name: str) -> list[dict]:
    """One split of `n` rows spread evenly over `levels`, shuffled, with ids `arith-<name>-<i>`."""
    rows = [row for steps, k in zip(levels, _level_counts(n, levels))
            for row in _draw_level(rng, steps, k, cfg, taken)]
    rng.shuffle(rows)
    return [{"id": f"{SOURCE}-{name}-{i}", **row} for i, row in enumerate(rows)]


DIFFICULTIES = ("easy", "uniform", "hard")


def difficulty_levels(name: str, max_steps: int = 5) -> tuple[int, ...]:
    """Training levels (operations) of a difficulty preset: `uniform` is 1..max_steps, `easy` its
    lowest and `hard` its highest 2/5 of the levels (at least one), so sets of equal size differ in
    how hard their trajectories are (the paper's RQ3).

    >>> difficulty_levels("easy"), difficulty_levels("uniform"), difficulty_levels("hard")
    ((1, 2), (1, 2, 3, 4, 5), (4, 5))

    Raises:
        RetuInputError: an unknown preset or max_steps < 1.
    """
    if name not in DIFFICULTIES or max_steps < 1:
        raise RetuInputError(f"arith difficulty must be one of {', '.join(DIFFICULTIES)} with max steps >= 1, "
                             f"got {name!r}, {max_steps}")
    k = max(1, round(0.4 * max_steps))
    levels = {"easy": range(1, k + 1), "uniform": range(1, max_steps + 1), "hard": range(max_steps - k + 1, max_steps + 1)}
    return tuple(levels[name])


def add_noise(rows: list[dict], share: float, rng: random.Random) -> list[dict]:
    """Rows with the solutions of round(share x len) of them (drawn by `rng`) given one wrong step."""
    wrong = set(rng.sample(range(len(rows)), round(share * len(rows))))
    out = []
    for i, row in enumerate(rows):
        if i in wrong:
            operands, ops = parse_problem(row["problem"])
            row = {**row, "solution": "\n".join(corrupt_steps(rng, operands, ops)), "expert_error": True}
        out.append(row)
    return out


def add_slips(rows: list[dict], p: float, rng: random.Random, at: int = SLIP_AT) -> list[dict]:
    """Rows with every solution rewritten by `slip_steps` (drawn by `rng`, threshold `at`); a row whose
    trajectory changed carries `"expert_error": true`."""
    out = []
    for row in rows:
        solution = "\n".join(slip_steps(rng, *parse_problem(row["problem"]), p, at))
        out.append({**row, "solution": solution, "expert_error": True} if solution != row["solution"] else row)
    return out


def make_splits(seed: int, n_train: int, n_val: int, n_eval: int, *,
                steps_train: Sequence[int] = (1, 2, 3, 4, 5),
                steps_val: Sequence[int] | None = None,
                steps_eval: Sequence[int] = (1, 2, 3, 4, 5),
                cfg: ArithConfig = ArithConfig(), noise: float = 0.0,
                sign_slip: float = 0.0, slip_at: int = SLIP_AT) -> dict[str, list[dict]]:
    """Train / validation / eval problem sets that share no problem of 2+ steps.

    Args:
        seed: Random seed; the same arguments give the same rows.
        n_train, n_val, n_eval: Rows per split, spread evenly over that split's step levels.
        steps_train, steps_val, steps_eval: Difficulty levels (operations) per split; validation
            defaults to the eval levels.
        cfg: Operand range and operations.
        noise: Share of train and validation trajectories with one wrong step (`corrupt_steps`);
            their `answer` stays right and they carry `"expert_error": true`. Eval rows are never
            changed, and the problems drawn do not depend on it.
        sign_slip: Probability that the expert drops the minus sign of a running result of `slip_at`
            or below (`slip_steps`), in train and validation trajectories; applied before `noise`.
            Eval rows are never changed, and the problems drawn do not depend on it.
        slip_at: The slip's threshold, a negative number (SLIP_AT = -5 by default).

    Returns:
        {"train": rows, "val": rows, "eval": rows}; each row has id, problem, answer, solution,
        source "arith" and steps.

    Raises:
        RetuInputError: If a level has fewer unique problems left than requested.
    """
    if not 0.0 <= noise < 1.0:
        raise RetuInputError(f"arith noise (share of wrong expert trajectories) must be in [0, 1), got {noise}")
    if not 0.0 <= sign_slip <= 1.0:
        raise RetuInputError(f"arith sign_slip (probability of a dropped minus sign) must be in [0, 1], got {sign_slip}")
    check_slip_at(slip_at, "arith slip_at")
    plan = [("eval", n_eval, steps_eval), ("val", n_val, steps_eval if steps_val is None else steps_val),
            ("train", n_train, steps_train)]
    taken: dict[int, set[str]] = {}  # steps -> problems of 2+ steps used by any split
    splits = {}
    for name, n, levels in plan:
        if n < 0 or not levels or min(levels) < 1:
            raise RetuInputError(f"arith {name} split: need n >= 0 and steps >= 1, got n={n}, "
                                 f"steps={list(levels)}")
        rng = random.Random(f"retu-arith/{seed}/{name}")  # str seeds hash with sha512: stable across runs
        splits[name] = make_split(rng, n, list(levels), cfg, taken, name)
        if name != "eval" and sign_slip:
            slips = random.Random(f"retu-arith/{seed}/{name}/slip")
            splits[name] = add_slips(splits[name], sign_slip, slips, slip_at)
        if name != "eval" and noise:
            splits[name] = add_noise(splits[name], noise, random.Random(f"retu-arith/{seed}/{name}/noise"))
    return {name: splits[name] for name in ("train", "val", "eval")}
