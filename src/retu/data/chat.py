"""The one prompt format shared by SFT, RL and evaluation: ChatML-style role/content messages.

A problem row becomes an optional system message, a user message holding the problem followed by
the row's instruction on its own line (`instruction`, default INSTRUCTION; the embedded task's rows
carry none, since its problems say what to do and its trajectories show the answer format), and
(for SFT) an assistant message holding the expert solution. The tokenizer's chat template turns the
messages into text; this module never writes template tokens.
"""

from __future__ import annotations

INSTRUCTION = "Put the final answer in \\boxed{}."


def format_user(problem: str, instruction: str = INSTRUCTION) -> str:
    """User message text: the problem, then the instruction on its own line (none when empty).

    Example:
        >>> format_user("Compute 7+5."), format_user("Compute 7+5.", "")
        ('Compute 7+5.\\nPut the final answer in \\\\boxed{}.', 'Compute 7+5.')
    """
    return f"{problem}\n{instruction}" if instruction else problem


def strip_instruction(content: str) -> str:
    """Inverse of `format_user`: the problem text of a user message (unchanged if it has no INSTRUCTION)."""
    text = content.rstrip()
    if text.endswith(INSTRUCTION):
        text = text[: -len(INSTRUCTION)].rstrip()
    return text


def build_messages(row: dict, *, system_prompt: str | None = None,
                   with_solution: bool = False) -> list[dict[str, str]]:
    """Chat messages for a problem row.

    Args:
        row: A problem row with `problem` (and `solution` when `with_solution`; `instruction` to
            replace INSTRUCTION, "" for none).
        system_prompt: Optional system message text; None or "" leaves it out.
        with_solution: Append the expert solution as the assistant turn (SFT); leave it out for
            generation (RL rollouts, evaluation).

    Returns:
        [{"role": ..., "content": ...}, ...]: system?, user, assistant?.
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": format_user(row["problem"], row.get("instruction", INSTRUCTION))})
    if with_solution:
        messages.append({"role": "assistant", "content": row["solution"]})
    return messages
