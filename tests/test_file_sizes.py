"""STYLE.md section 7 size limits: modules <= 600 lines, functions <= 80 lines, classes <= 250."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "retu"


def test_size_limits():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 600:
            problems.append(f"{path.relative_to(SRC)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            limit = 80 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else 250 if isinstance(node, ast.ClassDef) else None
            if limit and node.end_lineno - node.lineno + 1 > limit:
                problems.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not problems, "\n".join(problems)
