"""`retu fit`: robust ceiling fits of RL curves and the A_post = P_sft + PL_rl tables."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _parse_val_loss(specs: list[str]) -> dict:
    """SCENE=LOG pairs -> {scene: PhaseResult}."""
    from retu.errors import RetuInputError
    from retu.metrics import read_series
    from retu.phases import detect_phases

    out = {}
    for spec in specs:
        scene, sep, log = spec.partition("=")
        if not sep or not scene or not log:
            raise RetuInputError(f"--val-loss expects SCENE=LOG, got '{spec}'")
        series = read_series(log)
        out[scene] = detect_phases(series.step, series.value, source=log)
    return out


def fit(
    paths: list[Path] = typer.Argument(None, help="Curve files, directories of them (recursive) or metrics.jsonl."),
    authors: bool = typer.Option(False, "--authors", help="Also fit the paper authors' Qwen2.5-7B curves shipped with retu."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: fits and tables."),
    plot: Path = typer.Option(None, "--plot", help="Write the fits figure here (PNG); tables add <stem>_decomposition.png."),
    val_loss: list[str] = typer.Option([], "--val-loss", help="SCENE=LOG: SFT validation-loss log, shades the decomposition figure by sub-phase."),
) -> None:
    """Fit P(x) = P_start + (A - P_start) / (1 + (x / C_mid)^-B) to every RL curve."""
    from rich.progress import track

    from retu.errors import RetuInputError
    from retu.scaling import AUTHORS_CURVES, decompose, fit_ceiling, load_curves

    paths = [*(paths or []), *([AUTHORS_CURVES] if authors else [])]
    if not paths:
        raise RetuInputError("retu fit: give curve files, directories or metrics.jsonl, or --authors")
    curves = load_curves(paths)
    phases = _parse_val_loss(val_loss)
    rl = [c for c in curves if c.kind == "rl"]
    if not rl:
        raise RetuInputError(f"{paths[0]}: no RL curves to fit (found {len(curves)} SFT curves)")
    pairs = [(c, fit_ceiling(c.x, c.y, p_start=c.p_start, source=c.source))
             for c in track(rl, description="fitting", disable=as_json, transient=True)]
    tables = decompose(pairs) if any(c.kind == "sft" for c in curves) else []
    if plot is not None:
        from retu.report.plots import plot_decomposition, plot_fits

        plot_fits(pairs, plot)
        if tables:
            plot_decomposition(tables, plot.with_name(f"{plot.stem}_decomposition{plot.suffix or '.png'}"), phases)
    if as_json:
        fits = [{**f.to_dict(), "scene": c.scene, "sft_step": c.sft_step} for c, f in pairs]
        out = {"fits": fits, **({"tables": [t.to_dict() for t in tables]} if tables else {})}
        typer.echo(json.dumps(out))
        return
    for c, f in pairs:
        typer.echo(f.summary())
    for t in tables:
        typer.echo("\n" + t.summary())


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
