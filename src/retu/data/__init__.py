"""Data: problem-set JSONL io, chat formatting."""

from retu.data.chat import INSTRUCTION, build_messages, format_user, strip_instruction
from retu.data.io import iter_jsonl, read_problems, to_problem_row, validate_answers, write_jsonl

__all__ = [
    "INSTRUCTION",
    "build_messages",
    "format_user",
    "iter_jsonl",
    "read_problems",
    "strip_instruction",
    "to_problem_row",
    "validate_answers",
    "write_jsonl",
]
