"""retu's error families: bad input exits 2, a run that stopped itself exits 1, each with one line;
retu's own invariants raise plain ValueError (a traceback, not a user error)."""

import pytest
import torch

import retu.cli
from retu.algos.types import LossInputs
from retu.engine.callbacks import TrainingDiverged
from retu.engine.groups import RolloutExhaustedError
from retu.errors import RetuInputError, RunStopped


def _main_raising(monkeypatch, exc: Exception) -> int:
    def app():
        raise exc

    monkeypatch.setattr(retu.cli, "app", app)
    monkeypatch.setattr("retu.commands.register", lambda app: None)
    with pytest.raises(SystemExit) as end:
        retu.cli.main()
    return end.value.code


@pytest.mark.parametrize("exc, code, line", [
    (RetuInputError("cfg.yaml:3: optim.lr must be > 0,\n got -1"), 2, "retu: error: cfg.yaml:3: optim.lr must be > 0, got -1"),
    (TrainingDiverged("non-finite loss nan at step 7; the last checkpoint is still usable"), 1,
     "retu: stopped: non-finite loss nan at step 7; the last checkpoint is still usable"),
    (RolloutExhaustedError("DAPO kept 2 of 8 groups after max_gen_rounds=3"), 1,
     "retu: stopped: DAPO kept 2 of 8 groups after max_gen_rounds=3"),
])
def test_one_line_and_the_exit_code_of_each_family(monkeypatch, capsys, exc, code, line):
    assert _main_raising(monkeypatch, exc) == code
    assert capsys.readouterr().err == line + "\n"


def test_run_stops_are_one_family_and_not_input_errors():
    assert issubclass(TrainingDiverged, RunStopped) and issubclass(RolloutExhaustedError, RunStopped)
    assert not issubclass(RunStopped, RetuInputError)


def test_a_broken_invariant_is_a_bug_not_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask must be bool") as caught:
        LossInputs(logprobs=x, old_logprobs=x, advantages=torch.zeros(2), mask=torch.ones(2, 3))
    assert not isinstance(caught.value, RetuInputError)
