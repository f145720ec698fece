"""Figures in the paper's style: ceiling fits (Fig. 5), A_post = P_sft + PL_rl (Fig. 3), sub-phases.

Every function takes results (never raw logs), writes one PNG atomically and returns its path.
matplotlib runs headless (Agg).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from retu.phases import PhaseResult  # noqa: E402
from retu.scaling.curves import Curve  # noqa: E402
from retu.scaling.decompose import DecompositionTable, fit_flags  # noqa: E402
from retu.scaling.fit import CeilingFit  # noqa: E402

PHASE_COLORS = {"Adaptive": "#dbe9f6", "Stable": "#d9f0d3", "Mild": "#fff2cc", "Severe": "#f8d7d3"}
STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3, "figure.dpi": 150, "savefig.bbox": "tight"}


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


FLOPS_UNITS = (("EFLOPs", 1.0), ("PFLOPs", 1e3), ("TFLOPs", 1e6), ("GFLOPs", 1e9), ("MFLOPs", 1e12))


def flops_unit(max_eflops: float) -> tuple[str, float]:
    """The largest FLOPs unit in which `max_eflops` reads >= 1, and its factor from EFLOPs.

    >>> flops_unit(0.5), flops_unit(2.4e-6), flops_unit(0.0)
    (('PFLOPs', 1000.0), ('TFLOPs', 1000000.0), ('EFLOPs', 1.0))
    """
    if max_eflops <= 0:
        return FLOPS_UNITS[0]
    return next((u for u in FLOPS_UNITS if max_eflops * u[1] >= 1.0), FLOPS_UNITS[-1])


def _compute_axis(ax, max_eflops: float, label: str) -> None:
    """Label the x axis (data in EFLOPs) in the unit that keeps its numbers readable."""
    from matplotlib.ticker import FuncFormatter

    unit, factor = flops_unit(max_eflops)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * factor:g}"))
    ax.set_xlabel(f"{label} ({unit})")


def _footnote(fig, text: str) -> None:
    """A caption under the panels, below their tick labels and axis labels, wrapped to the figure's
    width (a long line would widen the saved figure, since it is cut to its contents)."""
    import textwrap

    fig.canvas.draw()
    inverse = fig.transFigure.inverted()
    bottom = min(inverse.transform(ax.get_tightbbox().get_points())[0, 1] for ax in fig.axes if ax.get_visible())
    chars = int(fig.get_figwidth() * 72 / 7 * 1.6)  # ~1.6 characters per point of width at 7 pt
    fig.text(0.01, bottom - 0.02, textwrap.fill(text, chars), fontsize=7, va="top")


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


# ---------------------------------------------------------------------------------------------------
# Fig. 5: RL curves with fitted ceilings


def draw_fit(ax, fit: CeilingFit, color, label: str, floor: float = -np.inf) -> None:
    """Points, fitted curve and ceiling of one RL run on `ax` (outliers x, held-out hollow, collapse grey)."""
    x, y = fit.x, fit.y
    held = np.zeros(len(x), dtype=bool) if fit.holdout_x is None else x > fit.holdout_x
    after = np.zeros(len(x), dtype=bool) if fit.collapse_x is None else x >= fit.collapse_x
    used = fit.inlier_mask & ~after
    ax.scatter(x[used & ~held], y[used & ~held], s=9, color=color, alpha=0.8)
    ax.scatter(x[used & held], y[used & held], s=14, facecolors="none", edgecolors=color, linewidths=0.9)
    ax.scatter(x[~fit.inlier_mask & ~after], y[~fit.inlier_mask & ~after], s=22, marker="x", color="k", linewidths=0.9)
    ax.scatter(x[after], y[after], s=9, color="0.6", alpha=0.7)
    low = y < floor  # far-off outliers and collapse points sit on the floor as 'v'
    ax.scatter(x[low], np.full(low.sum(), floor + 0.4), marker="v", s=14, color="0.4")
    grid = np.linspace(0.0, x.max() * 1.05, 200)
    bound = "".join(f", {flag}" for flag in fit_flags(fit) if flag.startswith("at bound"))  # the tables' words
    ax.plot(grid, fit.predict(grid), color=color, lw=1.4, label=f"{label}: {fit.ceiling_text()}{bound}")
    ax.axhline(fit.ceiling, color=color, lw=0.8, ls=":" if fit.saturated else "--", alpha=0.8)


def fit_floor(fits: list[CeilingFit]) -> float:
    """Lower y-limit that keeps every fitted point and branch point in view (3 points of margin)."""
    return min(min(f.y[f.fitted_mask].min(), f.p_start) for f in fits) - 3.0


def plot_fits(pairs: list[tuple[Curve, CeilingFit]], path: str | os.PathLike) -> Path:
    """One panel per scene; each RL curve with its fit (Fig. 5 of the paper)."""
    scenes = sorted({c.scene for c, _ in pairs})
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(scenes), 5.0, 3.6)
        for ax, scene in zip(axes, scenes, strict=True):
            runs = sorted([(c, f) for c, f in pairs if c.scene == scene], key=lambda cf: cf[0].sft_step or 0)
            colors = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(runs), 1)))
            floor = fit_floor([f for _, f in runs])
            for (curve, fit), color in zip(runs, colors, strict=True):
                name = f"SFT step {curve.sft_step}" if curve.sft_step is not None else curve.scene
                draw_fit(ax, fit, color, name, floor)
            ax.set_ylim(bottom=floor)
            ax.set_title(f"{scene}: RL from SFT checkpoints")
            _compute_axis(ax, max(c.x.max() for c, _ in runs), "RL compute since branch")
            ax.set_ylabel("accuracy (%)")
            ax.legend(fontsize=6, loc="best", frameon=True, framealpha=0.8)
        _footnote(fig, "filled: fitted; hollow: held-out tail; x: rejected outlier; grey: after collapse; "
                  "v: below the axis; dashed ceiling: unsaturated (lower bound)")
        return _save(fig, path)


# ---------------------------------------------------------------------------------------------------
# Fig. 3: decomposition bars with sub-phase backgrounds


def draw_decomposition(ax, table: DecompositionTable, phases: PhaseResult | None = None) -> None:
    """Stacked P_sft + PL_rl bars per SFT checkpoint, shaded by the checkpoint's sub-phase."""
    rows = table.rows
    pos = np.arange(len(rows))
    for i, row in enumerate(rows):
        phase = phases.phase_at(row.step) if phases is not None and row.step is not None else None
        if phase:
            ax.axvspan(i - 0.5, i + 0.5, color=PHASE_COLORS[phase], zorder=0, lw=0)
    p_sft = np.array([r.P_sft for r in rows])
    top = np.array([r.A_post if r.A_post is not None else r.A_bounds[0] for r in rows])
    hatch = ["//" if r.flags else "" for r in rows]
    ax.bar(pos, np.minimum(p_sft, top), color="#4c72b0", width=0.6, label="P_sft", zorder=2)
    gain = np.where(top >= p_sft, top - p_sft, 0.0)
    ax.bar(pos, gain, bottom=p_sft, color="#dd8452", width=0.6, hatch=hatch, label="PL_rl", zorder=2)
    loss = np.where(top < p_sft, p_sft - top, 0.0)  # RL lowered the ceiling below P_sft
    ax.bar(pos, loss, bottom=top, color="0.7", width=0.6, hatch=hatch, label="PL_rl < 0", zorder=2)
    for i, r in enumerate(rows):
        ax.text(i, max(top[i], p_sft[i]) + 0.3, f"{top[i]:.1f}" + ("*" if r.flags else ""), ha="center",
                va="bottom", fontsize=7)
    unit, factor = flops_unit(max((r.x_sft or 0.0) for r in rows))
    ticks = [f"{r.step} ({r.x_sft * factor:.3g})" if r.x_sft is not None else str(r.step) for r in rows]
    ax.set_xticks(pos, ticks, fontsize=7, rotation=45, ha="right")
    lo = min(min(p_sft.min(), top.min()), 100) - 8
    ax.set_ylim(max(lo, 0), min(max(p_sft.max(), top.max()) + 4, 105))
    ax.set_xlabel(f"SFT checkpoint: step (x_sft, {unit})")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{table.scene}: A_post = P_sft + PL_rl")


def plot_decomposition(tables: list[DecompositionTable], path: str | os.PathLike,
                       phases: dict[str, PhaseResult] | None = None) -> Path:
    """One panel per scene (Fig. 3 of the paper); `phases` maps scene -> its SFT sub-phases."""
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(tables), 5.0, 3.8)
        for ax, table in zip(axes, tables, strict=True):
            draw_decomposition(ax, table, (phases or {}).get(table.scene))
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLORS.values()]
        fig.legend(handles + list(axes[0].get_legend_handles_labels()[0]),
                   list(PHASE_COLORS) + ["P_sft", "PL_rl", "PL_rl < 0"], loc="lower center", ncol=4, fontsize=7,
                   frameon=False, bbox_to_anchor=(0.5, 1.0))
        _footnote(fig, "number: A_post; blue: P_sft (up to A_post); orange: PL_rl > 0; grey: PL_rl < 0, from A_post "
                  "up to P_sft; * flagged (collapsed, unsaturated or a parameter at a bound)")
        return _save(fig, path)


# ---------------------------------------------------------------------------------------------------
# Validation loss with sub-phases


def draw_phases(ax, result: PhaseResult) -> None:
    """Validation loss against step with each checkpoint's sub-phase shaded and the switch marked."""
    steps = result.steps.astype(float)
    edges = np.concatenate([[steps[0]], (steps[1:] + steps[:-1]) / 2.0, [steps[-1]]])
    for i, phase in enumerate(result.phases):
        ax.axvspan(edges[i], edges[i + 1], color=PHASE_COLORS[phase], lw=0, zorder=0)
    ax.plot(steps, result.losses, "o-", color="k", ms=3, lw=1.0, zorder=3)
    ax.axhline(result.L_min * (1 + result.delta_stable), color="0.4", lw=0.7, ls=":")
    ax.axhline(result.L_min * (1 + result.delta_severe), color="0.4", lw=0.7, ls="--")
    ax.axvline(result.recommended_step, color="#2a9d8f", lw=1.2, label=f"switch to RL: step {result.recommended_step}")
    ax.set_xlabel("SFT step")
    losses = np.asarray(result.losses, dtype=float)
    if losses.min() > 0 and losses.max() > 10 * losses.min():  # else the sub-phases near L_min are flat
        ax.set_yscale("log")
    ax.set_ylabel("validation loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.legend(fontsize=7, frameon=False)


def run_name(source: str) -> str:
    """A readable name for a log: the run directory's name for `runs/x/metrics.jsonl`, else the file's.

    >>> run_name("runs/pipeline/seed-0/arith/metrics.jsonl"), run_name("trainer_state.json")
    ('arith', 'trainer_state.json')
    """
    path = Path(source)
    return path.parent.name if path.name == "metrics.jsonl" and path.parent.name else path.name


def plot_phases(results: list[PhaseResult], path: str | os.PathLike) -> Path:
    """One panel per log: validation loss with sub-phase backgrounds (Fig. 3 style)."""
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(results), 4.6, 3.0)
        for ax, result in zip(axes, results, strict=True):
            draw_phases(ax, result)
            ax.set_title(run_name(result.source), fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLORS.values()]
        fig.legend(handles, list(PHASE_COLORS), loc="upper center", ncol=4, fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, 1.05))
        return _save(fig, path)


# ---------------------------------------------------------------------------------------------------
# Fig. 2: paradigms on one compute axis


def draw_paradigms(ax, paradigms: list) -> None:
    """Each paradigm's points with error bars, its fitted sigmoid from its start, and a horizontal line
    at the ceiling its legend entry states (combined over seeds when several; dashed when flagged)."""
    colors = plt.cm.tab10(np.arange(len(paradigms)) % 10)
    for p, color in zip(paradigms, colors, strict=True):
        label = p.label if p.ceiling is None else f"{p.label}: {p.ceiling.text()}"
        if p.y_ci is not None and np.isfinite(p.y_ci).any():
            below, above = np.nan_to_num(p.y - p.y_ci[0]), np.nan_to_num(p.y_ci[1] - p.y)
            ax.errorbar(p.x, p.y, yerr=np.clip([below, above], 0.0, None), fmt="o", ms=3, color=color,
                        alpha=0.75, lw=0.7, capsize=1.5)
        else:
            ax.plot(p.x, p.y, "o", ms=3, color=color, alpha=0.75)
        if p.x0 > 0:  # SFT-then-RL starts where its SFT leg ended
            ax.plot([p.x0], [p.y[0]], "D", ms=6, color=color, markeredgecolor="k", markeredgewidth=0.6)
        if p.fit is None:
            ax.plot(p.x, p.y, "-", lw=0.8, color=color, label=f"{label} (not fitted)")
            continue
        grid = np.linspace(0.0, (p.x[-1] - p.x0) * 1.05, 200)
        ax.plot(p.x0 + grid, p.fit.predict(grid), "-", lw=1.4, color=color, label=label)
        ax.hlines(p.fit.ceiling if p.ceiling is None else p.ceiling.value, p.x0, p.x0 + grid[-1], colors=[color],
                  lw=0.8, linestyles=":" if not p.fit.flagged else "--", alpha=0.8)


def plot_paradigms(paradigms: list, path: str | os.PathLike) -> Path:
    """Accuracy against cumulative EFLOPs from the base model, one colour per paradigm (Fig. 2).

    Args:
        paradigms: `retu.report.paradigms.Paradigm`s (x, y, x0, fit, label; error bars from y_ci).
        path: PNG to write.
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        draw_paradigms(ax, paradigms)
        _compute_axis(ax, max(p.x.max() for p in paradigms), "training compute from the base model")
        ax.set_ylabel("accuracy (%)")
        seeds = max(p.seeds for p in paradigms)
        ax.set_title("Paradigms on one compute axis" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
        ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.85)
        _footnote(fig, "bars: 95% interval of each evaluation (across seeds when several); lines: sigmoid fitted "
                  "from each paradigm's start (to the mean curve); dotted: the ceiling in the legend (dashed: "
                  "flagged); diamond: the switch from SFT to RL")
        return _save(fig, path)
