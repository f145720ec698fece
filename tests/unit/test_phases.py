"""Sub-phase labels: hand-checked series, the paper's digitised losses, online saturation."""

import json

import numpy as np
import pytest
from conftest import CURVES

from retu.config import SftCfg
from retu.errors import RetuInputError
from retu.phases import detect_phases, is_saturated, label_phases, online_phase

REFS = json.loads((CURVES / "references.json").read_text())["scenes"]
RESOLUTION = 0.005  # digitised losses are read to 0.01


def test_hand_checked_series():
    # L_min = 0.50 at step 300. Excess: 400 -> 0.51/0.5 - 1 = 2% (Stable, boundary inclusive),
    # 500 -> 4% (Mild), 600 -> 12% (Severe); 100 and 200 are above the band before the minimum.
    steps = [100, 200, 300, 400, 500, 600]
    losses = [0.90, 0.60, 0.50, 0.51, 0.52, 0.56]
    r = detect_phases(steps, losses)
    assert r.phases == ("Adaptive", "Adaptive", "Stable", "Stable", "Mild", "Severe")
    assert (r.L_min, r.step_min, r.recommended_step, r.mild_window) == (0.5, 300, 300, (500, 500))
    assert r.saturation_confirmed
    d = r.to_dict()
    assert d["checkpoints"][4] == {"step": 500, "val_loss": 0.52, "phase": "Mild"}


def test_stable_before_minimum_and_custom_deltas():
    # 0.505 is 1% above the later minimum 0.5: Stable already, so it is the recommended switch.
    r = detect_phases([1, 2, 3], [0.505, 0.5, 0.53])
    assert r.phases == ("Stable", "Stable", "Mild") and r.recommended_step == 1
    assert label_phases(np.arange(3), np.array([0.505, 0.5, 0.53]), delta_stable=0.001, delta_severe=0.05) == \
        ["Adaptive", "Stable", "Severe"]


def test_unconfirmed_saturation_when_still_falling():
    r = detect_phases([1, 2, 3], [1.0, 0.8, 0.6])
    assert r.recommended_step == 3 and not r.saturation_confirmed
    assert "saturation not confirmed" in r.summary()


def test_nan_rows_dropped_and_counted():
    r = detect_phases([1, 2, 3, 4], [1.0, float("nan"), 0.5, 0.6])
    assert r.n_dropped == 1 and list(r.steps) == [1, 3, 4]


@pytest.mark.parametrize("steps, losses, match", [
    ([1, 2], [float("nan"), float("nan")], r"^losses: no finite \(step, validation loss\) points$"),
    ([2, 1], [0.5, 0.4], r"^losses: step is not increasing at point 1 \(2 then 1\)$"),
    ([-1, 2], [0.5, 0.4], r"^losses: negative step at point 0 \(-1\)$"),
    ([1, 2, 3], [0.5, 0.4], r"^losses: step and validation loss must be 1-D of equal length, got \(3,\) and \(2,\)$"),
    ([1, 2], [0.5, -0.1], "must be > 0"),
])
def test_bad_input(steps, losses, match):
    with pytest.raises(RetuInputError, match=match):
        detect_phases(steps, losses)


def _ambiguous(value: float, l_min: float, before_min: bool) -> bool:
    """Could 0.01 rounding of the loss and of L_min move this checkpoint across a threshold it uses?

    Before the minimum only delta_s = 0.02 separates Adaptive from Stable; after it 0.10 matters too.
    """
    if value == l_min:
        return False
    lo = (value - RESOLUTION) / (l_min + RESOLUTION) - 1.0
    hi = (value + RESOLUTION) / (l_min - RESOLUTION) - 1.0
    return any(lo <= d <= hi for d in ((0.02,) if before_min else (0.02, 0.10)))


@pytest.mark.parametrize("scene", ["general", "easy102K", "uniform102K"])
def test_matches_paper_figure_where_rounding_is_not_ambiguous(scene):
    pts = REFS[scene]["val_loss_digitised"]
    r = detect_phases([p["sft_step"] for p in pts], [p["val_loss"] for p in pts])
    checked = 0
    for p, got, loss, step in zip(pts, r.phases, r.losses, r.steps, strict=True):
        if _ambiguous(loss, r.L_min, step < r.step_min):
            continue
        assert got == p["regime_in_figure"], (scene, p["sft_step"])
        checked += 1
    assert checked >= len(pts) - 2  # the disagreements are few and all ambiguous (see the note)


def test_paper_recommendations():
    # easy102K and uniform102K reach their minimum at step 720 and overfit mildly from 1080 on.
    for scene in ("easy102K", "uniform102K"):
        pts = REFS[scene]["val_loss_digitised"]
        r = detect_phases([p["sft_step"] for p in pts], [p["val_loss"] for p in pts])
        assert r.recommended_step == 720 and r.mild_window == (1080, 1800)


def test_online_phase_and_saturation():
    assert online_phase([1.0]) == "Adaptive"
    assert online_phase([1.0, 0.6, 0.5]) == "Adaptive"  # improved by 20% this checkpoint
    assert online_phase([1.0, 0.5, 0.505]) == "Stable"
    assert online_phase([1.0, 0.5, 0.53]) == "Mild"
    assert not is_saturated([1.0, 0.8, 0.6, 0.5], patience=3)
    assert is_saturated([1.0, 0.5, 0.499, 0.498, 0.497], patience=3)  # < 2% gained in 3 checkpoints
    assert is_saturated([1.0, 0.5, 0.6], patience=3) is False  # too few checkpoints to judge
    assert not is_saturated([1.0, 0.9, 0.5, 0.6], patience=3)  # one Severe checkpoint is not saturation
    assert not is_saturated([1.0, 0.5, 0.6, 0.45], patience=2)  # a jump, then a new minimum
    assert is_saturated([1.0, 0.5, 0.6, 0.7], patience=2)  # no new minimum in `patience` checkpoints


def test_saturation_waits_as_long_by_default_as_an_sft_run_does():
    flat_for_three = [1.0, 0.5, 0.499, 0.498, 0.497]
    assert SftCfg().patience == 4
    assert not is_saturated(flat_for_three) and is_saturated([*flat_for_three, 0.496])
    assert (SftCfg().delta_stable, SftCfg().delta_severe) == (0.02, 0.10)
