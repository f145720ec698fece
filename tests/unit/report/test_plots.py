"""What the report's figures draw: the validation loss on a log axis when it spans decades, the
paradigms' ceiling lines at the values their legend entries state, and fits at a bound named so."""

import numpy as np
import pytest

from retu.phases import detect_phases
from retu.report.estimates import Estimate
from retu.report.paradigms import Paradigm, fit_paradigm, mean_over_seeds
from retu.report.plots import draw_fit, draw_paradigms, draw_phases, plt  # plots sets the headless backend
from retu.scaling import fit_ceiling
from retu.scaling.forms import sigmoid_power

STEPS = [0, 100, 200, 300, 400, 500, 600, 700]


@pytest.mark.parametrize("losses, scale, label", [
    ([1.76, 0.68, 0.15, 0.056, 0.025, 0.018, 0.023, 0.019], "log", "validation loss (log scale)"),
    ([1.2, 0.8, 0.7, 0.705, 0.75, 0.8, 0.82, 0.85], "linear", "validation loss"),
])
def test_a_validation_loss_over_decades_is_drawn_on_a_log_axis(losses, scale, label):
    fig, ax = plt.subplots()
    draw_phases(ax, detect_phases(STEPS, losses))
    assert (ax.get_yscale(), ax.get_ylabel()) == (scale, label)
    plt.close(fig)


def paradigm(ceiling: float, c_mid: float) -> Paradigm:
    x = np.linspace(0.0, 20.0, 9)
    y = sigmoid_power(x, 6.0, ceiling, c_mid, 2.0)
    fit, note = fit_paradigm(x, y, "sft")
    ci = np.array([y - 2.0, y + 2.0])
    return Paradigm("sft", "pure SFT", x, y, 0.0, np.arange(9) * 100, fit, note, ci, ceiling=Estimate(
        fit.ceiling, fit.ceiling - 1.0, fit.ceiling + 1.0))


def test_the_ceiling_line_is_the_ceiling_the_legend_states():
    one = paradigm(72.0, 2.0)
    mean = mean_over_seeds([one, paradigm(66.0, 6.0)])  # both saturate inside x <= 20
    for p in (one, mean):
        fig, ax = plt.subplots()
        draw_paradigms(ax, [p])
        (line,) = ax.collections[-1].get_segments()
        assert line[:, 1] == pytest.approx([p.ceiling.value] * 2)
        assert ax.get_legend_handles_labels()[1] == [f"pure SFT: {p.ceiling.text()}"]
        plt.close(fig)
    # Two seeds: the legend's ceiling combines the seeds' fits, not the fit of the mean curve.
    assert mean.ceiling.value == pytest.approx(69.0, abs=0.1)
    assert mean.fit.ceiling == pytest.approx(70.2, abs=0.1)


def test_a_fit_at_a_bound_says_so_in_its_legend_entry():
    x = np.arange(1, 10) * 0.1
    flat = fit_ceiling(x, np.array([7, 7, 7, 7, 9, 9, 9, 9, 9.0]), p_start=7.0, source="flat")
    rising = fit_ceiling(x, sigmoid_power(x, 60.0, 80.0, 0.3, 2.0), p_start=60.0, source="rising")
    fig, ax = plt.subplots()
    draw_fit(ax, flat, "C0", "SFT step 0")
    draw_fit(ax, rising, "C1", "SFT step 600")
    assert ax.get_legend_handles_labels()[1] == [
        f"SFT step 0: {flat.ceiling_text()}, at bound (B=10, gain at end=1)", f"SFT step 600: {rising.ceiling_text()}"]
    plt.close(fig)
