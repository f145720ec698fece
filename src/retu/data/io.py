"""Problem-set files: JSONL reading with located errors, atomic writing, gold-answer validation.

Row schema (DESIGN.md section 4): `{"id", "problem", "answer", "solution"?, "source"?}` plus any extra
fields, which are kept. SFT sets may instead hold chat rows `{"messages": [...]}`; they are converted
to the same schema (problem = first user message without the boxed-answer instruction, solution =
last assistant message, answer = the row's `answer` or else the last `\\boxed{}` of the solution).
Every bad row raises RetuInputError naming `file:line` and the field.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from retu.data.chat import strip_instruction
from retu.errors import RetuInputError, where
from retu.rewards.extract import extract_boxed

# ---------------------------------------------------------------------------------------------------
# Reading


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a JSONL file.

    Raises:
        RetuInputError: Missing file, a line that is not UTF-8, invalid JSON, or a line that is not a
            JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise RetuInputError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RetuInputError(f"{where(path, lineno)}: not UTF-8 text (byte {exc.start}); expected JSON "
                                     "lines") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetuInputError(f"{where(path, lineno)}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise RetuInputError(f"{where(path, lineno)}: expected a JSON object, got "
                                     f"{type(obj).__name__}")
            yield lineno, obj


def _chat_to_row(raw: dict, loc: str) -> dict:
    """problem / solution / answer fields of a chat row `{"messages": [...]}`."""
    messages = raw["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RetuInputError(f"{loc}: field 'messages' must be a list of objects")
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    answers = [m.get("content") for m in messages if m.get("role") == "assistant"]
    if not users or not isinstance(users[0], str):
        raise RetuInputError(f"{loc}: field 'messages' has no user message")
    row = {k: v for k, v in raw.items() if k != "messages"}
    row["problem"] = strip_instruction(users[0])
    if answers and isinstance(answers[-1], str):
        row["solution"] = answers[-1]
        if "answer" not in row and extract_boxed(answers[-1]) is not None:
            row["answer"] = extract_boxed(answers[-1])
    return row


def _check_text(row: dict, field: str, loc: str, *, required: bool) -> None:
    value = row.get(field)
    if value is None and not required:
        return
    if value is None:
        raise RetuInputError(f"{loc}: missing field '{field}'")
    if not isinstance(value, str) or not value.strip():
        raise RetuInputError(f"{loc}: field '{field}' must be a non-empty string, got {value!r:.60}")


def to_problem_row(raw: dict, loc: str, *, default_id: str, require_solution: bool = False) -> dict:
    """Normalize one raw JSON object into a problem row.

    Args:
        raw: A problem row or a chat row.
        loc: `file:line` for error messages.
        default_id: The id used when the row has none.
        require_solution: Demand a non-empty `solution` (SFT sets).

    Returns:
        A new dict with str `id`, `problem`, `answer` and, when present, `solution`; extras kept.
    """
    row = _chat_to_row(raw, loc) if "messages" in raw else dict(raw)
    row["id"] = str(row.get("id", default_id))
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        row["answer"] = str(answer)  # GSM8K-style numeric answers
    _check_text(row, "problem", loc, required=True)
    _check_text(row, "answer", loc, required=True)
    _check_text(row, "solution", loc, required=require_solution)
    return row


def read_problems(path: str | Path, *, require_solution: bool = False,
                  validate: bool = False) -> list[dict]:
    """Read a JSONL problem set (problem rows or chat rows).

    Args:
        path: The .jsonl file.
        require_solution: Every row must carry a solution (SFT sets).
        validate: Also check with math-verify that every answer parses (`validate_answers`).

    Returns:
        Rows in file order; a missing id becomes `<file stem>-<line>`.

    Raises:
        RetuInputError: Naming `file:line` and the field, for the first bad row.
    """
    path = Path(path)
    rows, lines = [], []
    for lineno, raw in iter_jsonl(path):
        loc = where(path, lineno)
        rows.append(to_problem_row(raw, loc, default_id=f"{path.stem}-{lineno}",
                                   require_solution=require_solution))
        lines.append(lineno)
    if validate:
        validate_answers(rows, path, line_numbers=lines)
    return rows


def validate_answers(rows: Sequence[dict], path: str | Path, *,
                     line_numbers: Sequence[int] | None = None, timeout_s: float = 5.0) -> None:
    """Raise for the first row whose `answer` math-verify cannot parse (it could never be rewarded).

    Args:
        rows: Problem rows.
        path: The file they came from, for the message.
        line_numbers: Line of each row; default i + 1 (exact for files without blank lines).
        timeout_s: Seconds allowed per answer; a timeout counts as unparseable.

    Raises:
        RetuInputError: `file:line: field 'answer' ...` for the first unparseable answer.
    """
    from retu.rewards import check_gold  # starts the math-verify worker; keep plain reading light

    for i, row in enumerate(rows):
        if not check_gold(row["answer"], timeout_s=timeout_s):
            line = line_numbers[i] if line_numbers is not None else i + 1
            raise RetuInputError(f"{where(path, line)}: field 'answer' {row['answer']!r:.60} cannot be "
                                 f"parsed by math-verify")


# ---------------------------------------------------------------------------------------------------
# Writing


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as JSONL atomically (`atomic_write`): a row that is not JSON-serializable fails before
    any file is opened, and any earlier file at `path` stays untouched.

    Returns:
        The path written.
    """
    return atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_write(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary sibling, then rename it over `path`: readers never see half a file,
    and a crash leaves any earlier file untouched and no partial file behind.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "x" (not mkstemp) so the file gets the umask's permissions, not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
