"""The package's layers import only downward (README, "Layout"): checked on every module's source,
including imports inside functions."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "retu"

# package -> imports it must never make (module prefixes)
FORBIDDEN = {
    "data": ("torch", "transformers", "trl", "retu.engine", "retu.eval", "retu.curation", "retu.pipeline"),
    "scaling": ("torch", "transformers", "trl", "retu.engine", "retu.eval", "retu.report"),
    "report": ("torch", "transformers", "trl", "retu.engine", "retu.eval"),
    "algos": ("transformers", "trl", "retu.engine", "retu.eval", "retu.data"),
}


def imports_of(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    found = [(p.name, name) for p in sorted((SRC / package).glob("*.py")) for name in imports_of(p)
             if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])]
    assert found == []


# module -> imports it must never make: the config reads values only (what needs the machine stays in
# the engine), and only RL's rules look the presets up in retu.algos
MODULE_FORBIDDEN = {
    "config_loader.py": ("torch", "transformers", "trl", "retu.config", "retu.algos", "retu.engine"),
    "config.py": ("torch", "transformers", "trl", "retu.engine", "retu.eval", "retu.data", "retu.stages",
                  "retu.pipeline", "retu.compare"),
}


@pytest.mark.parametrize("module", sorted(MODULE_FORBIDDEN))
def test_the_config_imports_nothing_above_it(module):
    found = [name for name in imports_of(SRC / module)
             if any(name == f or name.startswith(f + ".") for f in MODULE_FORBIDDEN[module])]
    assert found == []
    assert "retu.algos.registry" in imports_of(SRC / "config.py")  # the check reads the real files


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from retu.engine.models import load_model\n    import torch\n")
    assert imports_of(module) == ["retu.engine.models", "torch"]
