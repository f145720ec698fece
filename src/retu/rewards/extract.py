"""Answer extraction from completions without math-verify (fast, pure string work)."""

from __future__ import annotations

_BOXED = "\\boxed{"


def _braced_content(text: str, open_at: int) -> str | None:
    """Content of the `{...}` group whose `{` is at `open_at`, nested braces allowed; None if unclosed."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None


def extract_boxed(text: str) -> str | None:
    """Return the content of the last complete `\\boxed{...}` in `text`, or None.

    A `\\boxed{` left unclosed (a truncated completion) is skipped in favour of an earlier closed one.

    Args:
        text: A completion or solution.

    Returns:
        The text between the braces, nested braces kept, or None when there is no closed box.

    Example:
        >>> extract_boxed("so $\\\\boxed{\\\\frac{1}{2}}$ and \\\\boxed{")
        '\\\\frac{1}{2}'
    """
    start = text.rfind(_BOXED)
    while start != -1:
        content = _braced_content(text, start + len(_BOXED) - 1)
        if content is not None:
            return content
        start = text.rfind(_BOXED, 0, start)
    return None
