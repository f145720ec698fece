"""`retu phases`: SFT sub-phases from a validation-loss log and the recommended switch to RL."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from retu.phases import DELTA_SEVERE, DELTA_STABLE


def phases(
    logs: list[Path] = typer.Argument(..., help="metrics.jsonl, run dir, trainer_state.json, CSV or TensorBoard events."),
    metric: str = typer.Option(None, "--metric", help="Loss metric name (default: the validation loss, found by name)."),
    delta_stable: float = typer.Option(DELTA_STABLE, "--delta-stable", help="Relative band above L_min that counts as Stable."),
    delta_severe: float = typer.Option(DELTA_SEVERE, "--delta-severe", help="Relative excess beyond which overfitting is Severe."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per log; a list for several)."),
    plot: Path = typer.Option(None, "--plot", help="Write the validation-loss figure with shaded sub-phases (PNG)."),
) -> None:
    """Label each checkpoint Adaptive / Stable / Mild / Severe and say where to switch to RL."""
    from retu.metrics import read_series
    from retu.phases import detect_phases

    results = []
    for log in logs:
        s = read_series(log, metric)
        r = detect_phases(s.step, s.value, delta_stable=delta_stable, delta_severe=delta_severe, source=str(log))
        results.append((r, s.n_dropped))
    if plot is not None:
        from retu.report.plots import plot_phases

        plot_phases([r for r, _ in results], plot)
    if as_json:
        dicts = [{**r.to_dict(), "n_dropped": dropped} for r, dropped in results]
        typer.echo(json.dumps(dicts[0] if len(dicts) == 1 else dicts))
        return
    for r, dropped in results:
        typer.echo(r.summary() + (f"\n{dropped} rows without a finite loss were dropped" if dropped else ""))


def register(app: typer.Typer) -> None:
    app.command("phases")(phases)
