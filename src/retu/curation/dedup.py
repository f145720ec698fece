"""Curation of problem sets: reading rows for curation, and deduplication by prompt.

Curation commands write the rows they keep exactly as they were read (chat rows stay chat rows,
extra fields stay), so `read_prompt_set` keeps each raw row beside its problem-schema view
(`retu.data.io.to_problem_row`), which every check and every prompt comes from.

Deduplication (`dedup_prompts`) keeps the first occurrence of each prompt and counts two kinds of
duplicate: exact (the same `problem` string as an earlier row) and normalised (a different string
whose `normalise_prompt` form equals an earlier row's). Normalisation folds case, whitespace,
sentence punctuation, number formatting and LaTeX spacing, and keeps everything that changes the
mathematics (operators, brackets, decimal points, digits).

Decontamination, difficulty and statistics live in `retu.curation.decontaminate`, `difficulty` and
`stats`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from retu.data.io import iter_jsonl, to_problem_row
from retu.errors import RetuInputError, where

# ---------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class PromptSet:
    """Rows of one JSONL file, raw and in the problem schema.

    Attributes:
        rows: The JSON objects as read; curation writes these back unchanged.
        problems: The same rows as problem rows (`id`, `problem`, `answer`, extras), same order.
        lines: The file line of each row, for error messages.
    """

    rows: list[dict]
    problems: list[dict]
    lines: list[int]

    @property
    def prompts(self) -> list[str]:
        """The `problem` text of every row."""
        return [p["problem"] for p in self.problems]


def read_prompt_set(path: str | Path) -> PromptSet:
    """Read a problem set (problem rows or chat rows) for curation.

    Raises:
        RetuInputError: Missing or empty file, invalid JSON, or a row without a non-empty `problem`
            and `answer`, naming `file:line`.
    """
    path = Path(path)
    rows, problems, lines = [], [], []
    for lineno, raw in iter_jsonl(path):
        problems.append(to_problem_row(raw, where(path, lineno), default_id=f"{path.stem}-{lineno}"))
        rows.append(raw)
        lines.append(lineno)
    if not rows:
        raise RetuInputError(f"{path}: no rows (the file is empty)")
    return PromptSet(rows, problems, lines)


# ---------------------------------------------------------------------------------------------------
# Normalisation

# LaTeX spacing commands render as (or near) a space; `\left` / `\right` only size brackets.
_LATEX_SPACE = re.compile(r"\\(?:[,;:! ]|q?quad(?![a-z]))|~")
_LATEX_SIZING = re.compile(r"\\(?:left|right|big|bigg|big[lr]|bigg[lr])(?![a-z])")
_LATEX_FRAC = re.compile(r"\\[dt]frac(?![a-z])")
_ESCAPED = re.compile(r"\\([$%])")  # \$5 and $5 are the same price
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")
_DECIMAL_ZEROS = re.compile(r"(\d)\.(\d*?)0+(?!\d)")
# Sentence punctuation, except a decimal point (a '.' before a digit: 2.5 and .5 keep theirs).
_PUNCTUATION = re.compile(r"[,;:!?\"'`$\u2018\u2019\u201c\u201d]|\.(?!\d)")
_SPACE_AROUND_SYMBOL = re.compile(r"\s*([^\w\s])\s*")


def _drop_decimal_zeros(match: re.Match) -> str:
    digits = match.group(2)
    return f"{match.group(1)}.{digits}" if digits else match.group(1)


def normalise_prompt(text: str) -> str:
    """The form of a prompt under which reformatted copies compare equal.

    Steps: Unicode NFKC; lower case; LaTeX spacing commands (`\\,` `\\;` `\\!` `\\quad` `~`) become
    spaces, `\\left` / `\\right` are dropped, `\\dfrac` / `\\tfrac` become `\\frac`, `\\$` becomes
    `$`; thousands separators go (`1,000` and `1{,}000` -> `1000`), as do trailing decimal zeros
    (`2.50` -> `2.5`, `3.0` -> `3`); sentence punctuation (`. , ; : ! ? $` and quotes) becomes a
    space, a decimal point (a `.` before a digit) stays; whitespace runs become one space and disappear next to a symbol
    (`x + y` -> `x+y`).

    Differs from an exact match only in formatting: a comma between digits that is not a thousands
    separator (`(1,2)`) becomes a space, so `(1,2)` never equals `(12)`, while `{1,234}` (a set)
    does equal `{1234}`.

    Example:
        >>> normalise_prompt("What is  1,000 + 2.50?")
        'what is 1000+2.5'
        >>> normalise_prompt(r"Find $\\left( \\dfrac{1}{2} \\right)\\,x$.")
        'find(\\\\frac{1}{2})x'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _LATEX_SPACE.sub(" ", text)
    text = _LATEX_SIZING.sub("", text)
    text = _LATEX_FRAC.sub(r"\\frac", text)
    text = _ESCAPED.sub(r"\1", text)
    text = _THOUSANDS.sub("", text)
    text = _DECIMAL_ZEROS.sub(_drop_decimal_zeros, text)
    text = _PUNCTUATION.sub(" ", text)
    return _SPACE_AROUND_SYMBOL.sub(r"\1", " ".join(text.split())).strip()


# ---------------------------------------------------------------------------------------------------
# Deduplication


@dataclass(frozen=True)
class DedupResult:
    """Which prompts to keep and why the others went.

    Attributes:
        keep: Indices of kept prompts, in input order (the first of each group).
        duplicate_of: Index of each removed prompt -> index of the kept prompt it repeats.
        exact: Removed prompts identical to an earlier one.
        normalised: Removed prompts equal to an earlier one only after `normalise_prompt`.
    """

    keep: list[int]
    duplicate_of: dict[int, int]
    exact: int
    normalised: int

    def summary(self) -> str:
        """One line: counts of exact and normalised duplicates and of kept prompts."""
        total = len(self.keep) + len(self.duplicate_of)
        return (f"{total} prompts: {self.exact} exact duplicates, {self.normalised} normalised duplicates, "
                f"{len(self.keep)} kept")


def dedup_prompts(prompts: Sequence[str]) -> DedupResult:
    """Keep the first occurrence of each prompt, matching exactly and after normalisation.

    Args:
        prompts: Prompt texts in file order.

    Returns:
        A DedupResult; a prompt counts as an exact duplicate when an earlier prompt has the same
        text, else as a normalised duplicate when an earlier one has the same normalised form.

    Example:
        >>> r = dedup_prompts(["Add 1,000 and 2.", "Add 1,000 and 2.", "add 1000 and 2", "Add 3 and 4."])
        >>> r.keep, r.duplicate_of, r.exact, r.normalised
        ([0, 3], {1: 0, 2: 0}, 1, 1)
    """
    first_exact: dict[str, int] = {}
    first_normal: dict[str, int] = {}
    keep, duplicate_of, exact = [], {}, 0
    for i, prompt in enumerate(prompts):
        if prompt in first_exact:
            duplicate_of[i] = first_exact[prompt]
            exact += 1
            continue
        key = normalise_prompt(prompt)
        first_exact[prompt] = first_normal.setdefault(key, i)
        if first_normal[key] != i:
            duplicate_of[i] = first_normal[key]
        else:
            keep.append(i)
    return DedupResult(keep, duplicate_of, exact, len(duplicate_of) - exact)
