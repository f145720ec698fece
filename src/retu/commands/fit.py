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


def _fit_curves(rl: list, upto: float | None, prior_paths: list[Path], quiet: bool) -> list:
    """(curve, fit) per RL curve: finished fits, or with --upto fits of their first part with each
    curve's prior from the finished fits of the --prior curves (the curve itself left out)."""
    from rich.progress import track

    from retu.errors import RetuInputError
    from retu.scaling import FitOptions, fit_ceiling, load_curves, predict_ceiling, sibling_prior_for
    from retu.scaling.early import check_upto

    if upto is None:
        if prior_paths:
            raise RetuInputError("--prior needs --upto: finished curves are fitted alone")
        return [(c, fit_ceiling(c.x, c.y, p_start=c.p_start, source=c.source))
                for c in track(rl, description="fitting", disable=quiet, transient=True)]
    upto = check_upto(upto, "--upto")
    siblings = [(c, fit_ceiling(c.x, c.y, p_start=c.p_start, source=c.source, options=FitOptions(n_boot=0)))
                for c in load_curves(prior_paths) if c.kind == "rl"]
    if prior_paths and not siblings:
        raise RetuInputError(f"--prior {prior_paths[0]}: no RL curves among the prior curves")
    return [(c, predict_ceiling(c.x, c.y, upto=upto, p_start=c.p_start, source=c.source,
                                prior=sibling_prior_for(c, siblings)))
            for c in track(rl, description=f"fitting up to {upto:g}", disable=quiet, transient=True)]


def fit(
    paths: list[Path] = typer.Argument(None, help="Curve files, directories of them (recursive) or metrics.jsonl."),
    authors: bool = typer.Option(False, "--authors", help="Also fit the paper authors' Qwen2.5-7B curves shipped with retu."),
    upto: float = typer.Option(None, "--upto", metavar="FRACTION", help="Fit each RL curve as a run still going, on its points with compute <= FRACTION x its last compute: A with an interval, or A null with a lower bound."),
    prior: list[Path] = typer.Option([], "--prior", help="With --upto: finished sibling curves (repeatable; files, directories, metrics.jsonl) whose fits give each curve a prior; the curve itself is left out, so the fitted paths may be given."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: fits and tables."),
    plot: Path = typer.Option(None, "--plot", help="Write the fits figure here (PNG); tables add <stem>_decomposition.png."),
    val_loss: list[str] = typer.Option([], "--val-loss", help="SCENE=LOG: SFT validation-loss log, shades the decomposition figure by sub-phase."),
) -> None:
    """Fit P(x) = P_start + (A - P_start) / (1 + (x / C_mid)^-B) to every RL curve."""
    from retu.errors import RetuInputError
    from retu.scaling import AUTHORS_CURVES, decompose, load_curves

    paths = [*(paths or []), *([AUTHORS_CURVES] if authors else [])]
    if not paths:
        raise RetuInputError("retu fit: give curve files, directories or metrics.jsonl, or --authors")
    curves = load_curves(paths)
    phases = _parse_val_loss(val_loss)
    rl = [c for c in curves if c.kind == "rl"]
    if not rl:
        raise RetuInputError(f"{paths[0]}: no RL curves to fit (found {len(curves)} SFT curves)")
    pairs = _fit_curves(rl, upto, prior, as_json)
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
