"""`retu report`: report.md, figures and tables from run directories (metrics.jsonl only).

A run directory is any directory holding a metrics.jsonl; its `run_start` record says what it is
(`config.kind` sft or rl, and `curve` {kind, scene, sft_step, sft_eflops}). SFT runs give the
validation-loss curve (metric `loss/val`) of their scene (dataset); RL runs give (compute, accuracy)
curves branched from an SFT checkpoint. Nothing is parsed from stdout or markdown.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from retu.data.io import atomic_write
from retu.errors import RetuInputError
from retu.flops import EFLOP
from retu.metrics import read_records, read_series, run_end_status, run_start
from retu.phases import PhaseResult, detect_phases
from retu.scaling import correlate, decompose, fit_ceiling
from retu.scaling.curves import read_curve_run
from retu.scaling.decompose import Correlation, DecompositionTable, flag_legend


@dataclass(frozen=True)
class Report:
    """Everything report.md shows; `to_dict()` is the JSON written beside it."""

    phases: dict[str, PhaseResult]
    tables: list[DecompositionTable]
    fits: list
    correlation: Correlation | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"phases": {s: p.to_dict() for s, p in self.phases.items()},
                "tables": [t.to_dict() for t in self.tables],
                "fits": [{**f.to_dict(), "scene": c.scene, "sft_step": c.sft_step} for c, f in self.fits],
                "correlation": None if self.correlation is None else self.correlation.to_dict(),
                "notes": list(self.notes)}


def find_runs(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """SFT and RL metrics.jsonl files under the given directories (recursive)."""
    sft, rl = [], []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise RetuInputError(f"{root}: directory not found")
        for path in sorted(root.rglob("metrics.jsonl")) if root.is_dir() else [root]:
            start = run_start(path)
            kind = (start.get("curve") or {}).get("kind") or (start.get("config") or {}).get("kind")
            (sft if kind == "sft" else rl if kind == "rl" else []).append(path)
    if not sft and not rl:
        raise RetuInputError(f"{paths[0]}: no retu runs (metrics.jsonl with a run_start record) found")
    return sft, rl


def _scene_of(path: Path) -> str:
    start = run_start(path)
    return str((start.get("curve") or {}).get("scene") or start.get("run_id") or path.parent.name)


def build_report(paths: list[str | Path]) -> Report:
    """Fit every RL run, label every SFT run's sub-phases, decompose, correlate (>= 3 datasets)."""
    sft_logs, rl_logs = find_runs(paths)
    phases = {}
    for log in sft_logs:
        s = read_series(log, "loss/val")
        phases[_scene_of(log)] = detect_phases(s.step, s.value, source=str(log.parent))
    notes, fits = [], []
    for log in rl_logs:
        if note := pruned_note(log):
            notes.append(note)
        curve = read_curve_run(log)
        if len(curve.x) < 4:
            notes.append(f"{log}: {len(curve.x)} evaluations after the branch point; too few to fit")
            continue
        try:
            fits.append((curve, fit_ceiling(curve.x, curve.y, p_start=curve.p_start, source=str(log))))
        except RetuInputError as exc:  # one unfittable branch (e.g. collapsed at once) must not sink the report
            notes.append(f"not fitted: {exc}")
    tables = _with_base_rows(decompose(fits))
    # The predictor relates a dataset's minimum validation loss to its SFT-then-RL ceiling: the best
    # trusted branch from one of its checkpoints (the base-model row shared by every table is not).
    best = {}
    for t in tables:
        rows = [r for r in t.rows if r.step and r.A_post is not None and not r.flags]
        if rows:
            best[t.scene] = max(rows, key=lambda r: r.A_post)
    both = [s for s in best if s in phases]
    corr = correlate([phases[s].L_min for s in both], [best[s].A_post for s in both]) if len(both) >= 3 else None
    return Report(phases, tables, fits, corr, tuple(notes))


def pruned_note(log: Path) -> str | None:
    """"<run>: pruned at step N ..." for an RL run whose last run_end says pruned, else None."""
    if run_end_status(log) != "pruned":
        return None
    event = next(r for r in reversed(read_records(log)) if r.get("kind") == "event" and r.get("event") == "pruned")
    lo, hi = event["interval"]
    return (f"{log.parent.name}: pruned at step {event['step']} with {event['steps_left']} steps left: its ceiling "
            f"interval [{lo:.1f}, {hi:.1f}] lies below the lower bound {event['best_lo']:.1f} of "
            f"{event['best_branch']}; compute saved {event['saved_flops'] / EFLOP:.4g} EFLOPs (rerun with "
            "prune: false to finish it)")


def _base_in_every_scene(fits: list) -> list:
    """For the figure: the base-model RL curve is drawn in every dataset's panel, as in its table."""
    scenes = sorted({c.scene for c, _ in fits} - {"base"})
    if not scenes:
        return fits
    out = [(c, f) for c, f in fits if c.scene != "base"]
    return out + [(replace(c, scene=s), f) for c, f in fits if c.scene == "base" for s in scenes]


def _with_base_rows(tables: list[DecompositionTable]) -> list[DecompositionTable]:
    """RL from the base model (scene "base", SFT step 0) is row 0 of every dataset's table."""
    base = next((t for t in tables if t.scene == "base"), None)
    if base is None or len(tables) == 1:
        return tables
    return [DecompositionTable(t.scene, base.rows + t.rows) for t in tables if t.scene != "base"]


# ---------------------------------------------------------------------------------------------------
# Writing


def table_csv(tables_by_seed: dict[int | None, list[DecompositionTable]]) -> str:
    """decomposition.csv: one row per (seed, scene, SFT step) with the 95% intervals."""
    def ci(pair, i):
        return "" if pair is None or not math.isfinite(pair[i]) else round(pair[i], 4)

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["seed", "scene", "step", "x_sft", "P_sft", "P_sft_lo", "P_sft_hi", "PL_rl", "A_post", "A_lo", "A_hi",
                "A_lower", "A_upper", "C_mid", "B", "flags"])
    for seed, tables in tables_by_seed.items():
        for t in tables:
            for r in t.rows:
                w.writerow([seed, t.scene, r.step, r.x_sft, round(r.P_sft, 4), ci(r.P_sft_ci, 0), ci(r.P_sft_ci, 1),
                            None if r.PL_rl is None else round(r.PL_rl, 4),
                            None if r.A_post is None else round(r.A_post, 4), ci(r.A_ci, 0), ci(r.A_ci, 1),
                            round(r.A_bounds[0], 4), round(r.A_bounds[1], 4), round(r.C_mid, 4), round(r.B, 4),
                            ";".join(r.flags)])
    return buf.getvalue()


def _ci(pair) -> str:
    return "" if pair is None or not all(math.isfinite(v) for v in pair) else f" [{pair[0]:.1f}, {pair[1]:.1f}]"


def render_sections(report: Report, figures: dict[str, str], level: int = 2) -> list[str]:
    """report.md's sections at heading `level`: phases and switch point, decomposition tables (every
    accuracy with its 95% interval), correlation, figures, notes."""
    h = "#" * level
    lines = []
    for scene, p in report.phases.items():
        mild = f"; Mild overfitting window: steps {p.mild_window[0]}-{p.mild_window[1]}" if p.mild_window else ""
        unconfirmed = "" if p.saturation_confirmed else " The minimum is the last checkpoint: saturation is not confirmed."
        lines += [f"{h} SFT sub-phases: {scene}", "",
                  f"Minimum validation loss {p.L_min:.4f} at step {p.step_min}. Recommended switch to RL: step "
                  f"{p.recommended_step} (first Stable checkpoint){mild}.{unconfirmed}", "",
                  "| step | val loss | phase |", "| ---: | ---: | --- |"]
        lines += [f"| {int(s)} | {v:.4f} | {ph} |" for s, v, ph in zip(p.steps, p.losses, p.phases, strict=True)]
        lines.append("")
    for t in report.tables:
        lines += [f"{h} A_post = P_sft + PL_rl: {t.scene}", "",
                  "Accuracy in % with 95% intervals: P_sft from the branch point's evaluation, A_post from the fit's "
                  "bootstrap.", "",
                  "| SFT step | x_sft (EFLOPs) | P_sft | PL_rl | A_post | C_mid | B | flags |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in t.rows:
            a = f"{r.A_post:.1f}{_ci(r.A_ci)}" if r.A_post is not None else f">= {r.A_bounds[0]:.1f}"
            pl = "-" if r.PL_rl is None else f"{r.PL_rl:.1f}"
            x = "-" if r.x_sft is None else f"{r.x_sft:.4g}"
            # A parameter on a bound is not an estimate: C_mid and B are left out (the flag names it).
            shape = ("-", "-") if any(f.startswith("at bound") for f in r.flags) else (f"{r.C_mid:.3g}", f"{r.B:.2f}")
            lines.append(f"| {r.step} | {x} | {r.P_sft:.1f}{_ci(r.P_sft_ci)} | {pl} | {a} | {shape[0]} | {shape[1]} | "
                         f"{', '.join(r.flags)} |")
        if legend := flag_legend(f for r in t.rows for f in r.flags):
            lines += ["", legend]
        if t.best is not None:
            lines += ["", f"Highest trusted ceiling: A_post = {t.best.A_post:.1f} from SFT step {t.best.step}."]
        lines.append("")
    if report.correlation is not None:
        lines += [f"{h} Minimum validation loss as a predictor", "", report.correlation.summary(), ""]
    for title, name in figures.items():
        lines += [f"{h} {title}", "", f"![{title}]({name})", ""]
    if report.notes:
        lines += [f"{h} Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return lines


def render_markdown(report: Report, figures: dict[str, str], extra: str = "") -> str:
    """report.md text: an optional opening section, then `render_sections`."""
    lines = ["# retu report", ""] + ([extra, ""] if extra else [])
    return "\n".join(lines + render_sections(report, figures))


def write_figures(report: Report, out: Path, suffix: str = "") -> dict[str, str]:
    """The report's figures as PNGs in `out` (file names end in `suffix`); {title: file name}."""
    from retu.report.plots import plot_decomposition, plot_fits, plot_phases

    figures = {}
    if report.phases:
        plot_phases(list(report.phases.values()), out / f"phases{suffix}.png")
        figures["Validation loss and sub-phases"] = f"phases{suffix}.png"
    if report.fits:
        plot_fits(_base_in_every_scene(report.fits), out / f"fits{suffix}.png")
        figures["RL curves and fitted ceilings"] = f"fits{suffix}.png"
    if report.tables:
        plot_decomposition(report.tables, out / f"decomposition{suffix}.png", report.phases)
        figures["Plasticity-Ceiling decomposition"] = f"decomposition{suffix}.png"
    return figures


def write_report(report: Report, out_dir: str | Path, extra: str = "") -> Path:
    """Write report.md, report.json, decomposition.csv and the figures into out_dir; returns report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(report, out)
    atomic_write(out / "decomposition.csv", table_csv({None: report.tables}))
    atomic_write(out / "report.json", json.dumps(report.to_dict(), indent=1))
    return atomic_write(out / "report.md", render_markdown(report, figures, extra))
