"""extract_boxed: last closed box, nested braces, truncated completions."""

import pytest

from retu.rewards import extract_boxed


@pytest.mark.parametrize("text, expected", [
    ("7+5=12\n\\boxed{12}", "12"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("$\\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"),
    ("\\boxed{3} and a truncated \\boxed{\\frac{1}{", "3"),  # unclosed last box falls back
    ("\\boxed{}", ""),
    ("no box here", None),
    ("\\boxed{unclosed", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected
