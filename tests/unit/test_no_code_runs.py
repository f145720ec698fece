"""Nothing retu reads may run code: YAML through safe_load only, no trust_remote_code, no pickle.

Checkpoint weights are safetensors (tests/integration/test_sft.py checks a run's files); the optimizer,
scheduler and RNG states the HF Trainer saves beside them are torch files, and the pinned transformers
loads each of them with `weights_only=True`, which the last test checks in its source.
"""

import ast
import re
from pathlib import Path

import pytest

from retu.config import load_config
from retu.config_loader import read_yaml
from retu.errors import RetuInputError

SRC = Path(__file__).resolve().parents[2] / "src" / "retu"
UNSAFE = {
    "trust_remote_code": r"trust_remote_code",
    "an unsafe YAML loader": r"yaml\.(load|unsafe_load|full_load|load_all)\(|yaml\.(Unsafe|Full)?Loader\b",
    "pickle": r"\bimport pickle\b|\bpickle\.loads?\(|\bdill\b|\bjoblib\.load\(",
    "eval / exec": r"(?<![\w.])(eval|exec)\(",
}


def _python_sources():
    return sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("what", UNSAFE)
def test_source_has_no_code_running_reader(what):
    hits = [f"{p.relative_to(SRC)}:{i}" for p in _python_sources()
            for i, line in enumerate(p.read_text().splitlines(), start=1) if re.search(UNSAFE[what], line)]
    assert not hits, f"{what} in {', '.join(hits)}"


def test_every_torch_load_in_retu_passes_weights_only_true():
    calls = [(p, node) for p in _python_sources() for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load"]
    unsafe = [f"{p.relative_to(SRC)}:{n.lineno}" for p, n in calls
              if not any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in n.keywords)]
    assert not unsafe, f"torch.load without weights_only=True at {', '.join(unsafe)}"


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch {marker}']",
                                 "!!python/name:os.system", "x: !!python/object/new:os.system ['touch {marker}']"])
def test_yaml_tags_that_run_code_are_refused_with_one_line(tmp_path, tag):
    marker = tmp_path / "ran"
    path = tmp_path / "cfg.yaml"
    path.write_text(tag.format(marker=marker) + "\n")
    with pytest.raises(RetuInputError) as err:
        load_config(path)
    assert re.fullmatch(rf"{re.escape(str(path))}:1: not valid YAML \(could not determine a constructor .*python.*\)",
                        str(err.value)), str(err.value)
    assert not marker.exists()


def test_read_yaml_keeps_plain_data():
    path = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "sft.yaml"
    assert isinstance(read_yaml(path), dict) and "optim" in read_yaml(path)


def test_the_pinned_trainer_loads_its_torch_files_with_weights_only():
    import transformers.trainer as trainer

    tree = ast.parse(Path(trainer.__file__).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "torch.load"]
    assert len(calls) >= 5  # the optimizer, scheduler, RNG and weight loads are all here
    unsafe = [n.lineno for n in calls
              if not any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in n.keywords)]
    assert not unsafe, f"transformers/trainer.py loads torch files without weights_only=True at lines {unsafe}"
