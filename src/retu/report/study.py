"""The pipeline's report over all its seeds: Findings first, then the paradigms on one compute axis,
then each seed's sub-phases, decomposition tables and figures.

`retu pipeline` writes `<root>/pipeline.json` (seeds, datasets in order, paradigms), so the report
can be rebuilt from the directory alone (`retu report <root>`). Each seed lives in `<root>/seed-<s>/`:
one SFT run per dataset (`<name>/`), the RL branches (`rl/<name>-step<N>/`, the base model's run
`rl/base/`) and the synchronized paradigms from the base model (`paradigms/<method>/`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retu.config import built_model_name, config_value
from retu.data.io import atomic_write
from retu.errors import RetuInputError
from retu.metrics import run_start
from retu.report.build import Report, build_report, render_sections, write_figures
from retu.report.evidence import seed_evidence
from retu.report.findings import SeedEvidence, check_claims, check_each_seed, render_findings
from retu.report.paradigms import Paradigm, mean_over_seeds, paradigm_curve
from retu.scaling.decompose import fit_flags, flag_legend

LAYOUT = "pipeline.json"
BASE = "base"
PARADIGM_LABELS = {"sft": "pure SFT", "rl": "pure RL", "sft_then_rl": "SFT-then-RL (switch)",
                   "luffy": "LUFFY", "srft": "SRFT", "upt": "UPT"}


def seed_dir(root: Path, seed: int) -> Path:
    return Path(root) / f"seed-{seed}"


def write_layout(root: Path, seeds: list[int], datasets: list[str], paradigms: list[str]) -> None:
    """Record what the pipeline runs, so the report can be rebuilt from the directory alone."""
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / LAYOUT, json.dumps({"seeds": seeds, "datasets": datasets, "paradigms": paradigms}, indent=1))


def read_layout(root: Path) -> dict:
    """The pipeline layout of `root`.

    Raises:
        RetuInputError: no pipeline.json there, or one without seeds and datasets.
    """
    path = Path(root) / LAYOUT
    if not path.exists():
        raise RetuInputError(f"{path}: not found; `retu pipeline` writes it (is {root} a pipeline run directory?)")
    layout = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(layout, dict) or not layout.get("seeds") or not layout.get("datasets"):
        raise RetuInputError(f"{path}: needs non-empty 'seeds' and 'datasets'")
    return layout


@dataclass(frozen=True)
class Study:
    """Everything the pipeline report shows, over all seeds."""

    seeds: tuple[int, ...]
    reports: dict[int, Report]
    evidence: tuple[SeedEvidence, ...]
    findings: tuple
    paradigms: tuple[Paradigm, ...]
    seed_findings: dict = field(default_factory=dict)  # seed -> the claims on that seed alone (several seeds)
    base_models: dict = field(default_factory=dict)  # seed -> its base model (`base_model_of`)

    def to_dict(self) -> dict:
        return {"seeds": list(self.seeds), "base_models": {str(s): m for s, m in self.base_models.items()},
                "findings": [f.to_dict() for f in self.findings],
                "findings_per_seed": {str(s): [f.to_dict() for f in fs] for s, fs in self.seed_findings.items()},
                "paradigms": [p.row() for p in self.paradigms],
                "per_seed": {str(s): r.to_dict() for s, r in self.reports.items()}}


def model_label(name: str, seed: int) -> str:
    """A model as reports name it, with the seed of a built one: "base:1m with model.seed 0"."""
    return f"{name} with model.seed {seed}" if built_model_name(name) else str(name)


def base_model_of(sft_dir: Path) -> str | None:
    """The model an SFT run started from (its run_start record, `model_label`); None when it does not say."""
    cfg = run_start(Path(sft_dir) / "metrics.jsonl").get("config") or {}
    name = config_value(cfg, "model.name_or_path")
    return None if name is None else model_label(name, config_value(cfg, "model.seed"))


def render_base_models(base_models: dict[int, str | None]) -> str:
    """The report's line on what the seeds started from: one base model for all, or one each ("" when
    a seed's run does not say)."""
    models = set(base_models.values())
    if None in models:
        return ""
    if len(models) > 1:
        each = "; ".join(f"seed {s}: {m}" for s, m in base_models.items())
        return f"Base models: one per seed ({each}), so the replications also sample the base model."
    if len(base_models) > 1:
        model = models.pop()
        hint = " (`vary_base_model: true` varies it too)" if " with model.seed " in model else ""
        return (f"Base model: {model}, the same for all {len(base_models)} seeds: they vary the task's splits, "
                f"the data order and the sampling, not the base model{hint}.")
    return f"Base model: {models.pop()}." if models else ""


def _paradigm_runs(root: Path, seed: int, layout: dict, evidence: SeedEvidence) -> dict[str, Path]:
    """Run directory of each paradigm of one seed (those that exist)."""
    sd = seed_dir(root, seed)
    primary = evidence.scenes[0]
    runs = {"sft": sd / primary.name, "rl": sd / "rl" / BASE,
            "sft_then_rl": sd / "rl" / f"{primary.name}-step{primary.switch_step}"}
    runs.update({m: sd / "paradigms" / m for m in layout.get("paradigms", [])})
    return {m: d for m, d in runs.items() if (d / "metrics.jsonl").exists()}


def build_study(root: str | Path) -> Study:
    """Read every seed's runs, test the findings and average the paradigm curves over seeds."""
    root = Path(root)
    layout = read_layout(root)
    reports, evidence, curves, base_models = {}, [], {}, {}
    for seed in layout["seeds"]:
        sd = seed_dir(root, seed)
        sft_dirs = [sd / name for name in layout["datasets"]]
        base_models[seed] = base_model_of(sft_dirs[0])
        report = build_report([*sft_dirs, *([sd / "rl"] if (sd / "rl").exists() else [])])
        ev = seed_evidence(seed, sft_dirs, sd / "rl", report,
                           {m: sd / "paradigms" / m for m in layout.get("paradigms", [])
                            if (sd / "paradigms" / m / "metrics.jsonl").exists()})
        reports[seed], ev_seed = report, ev
        evidence.append(ev_seed)
        for method, run_dir in _paradigm_runs(root, seed, layout, ev).items():
            curves.setdefault(method, []).append(paradigm_curve(method, PARADIGM_LABELS[method], run_dir))
    n = len(layout["seeds"])
    paradigms = tuple(mean_over_seeds(c) for c in curves.values() if len(c) == n)
    return Study(tuple(layout["seeds"]), reports, tuple(evidence), tuple(check_claims(evidence)), paradigms,
                 check_each_seed(evidence) if n > 1 else {}, base_models)


def _point(p: Paradigm, i: int) -> str:
    """Point i of a paradigm's curve with its 95% interval: `75.2 [70.8, 79.1]`."""
    lo, hi = (np.nan, np.nan) if p.y_ci is None else p.y_ci[:, i]
    return f"{p.y[i]:.1f}" + ("" if not (np.isfinite(lo) and np.isfinite(hi)) else f" [{lo:.1f}, {hi:.1f}]")


def render_study(study: Study, figures: dict[int, dict[str, str]], paradigm_figure: str | None) -> str:
    """report.md: Findings, the paradigm table and figure, then each seed's sections."""
    models = render_base_models(study.base_models)
    lines = ["# retu report", "", *([models, ""] if models else []),
             render_findings(study.findings, len(study.seeds), study.seed_findings), ""]
    if study.paradigms:
        seeds = len(study.seeds)
        best = study.evidence[0].scenes[0].sft_best if study.evidence and study.evidence[0].scenes else None
        n = f" on n={best.n} problems" if best is not None and best.n else ""
        lines += ["## Paradigms on one compute axis", "",
                  f"Accuracy (%){n} against cumulative training FLOPs from the base model ({seeds} seed"
                  f"{'s, means with 95% intervals across seeds' if seeds > 1 else ', with Wilson 95% intervals'}).", "",
                  "| paradigm | EFLOPs | start | best | final | fitted ceiling | note |",
                  "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for p in study.paradigms:
            ceiling = "-" if p.ceiling is None else p.ceiling.text()
            best = int(np.argmax(p.y))
            lines.append(f"| {p.label} | {p.x[-1]:.4g} | {_point(p, 0)} | {_point(p, best)} | {_point(p, len(p.y) - 1)} | "
                         f"{ceiling} | {p.note} |")
        if legend := flag_legend(f for p in study.paradigms if p.fit is not None for f in fit_flags(p.fit)):
            lines += ["", legend]
        if paradigm_figure:
            lines += ["", f"![paradigms]({paradigm_figure})"]
        lines.append("")
    for seed, report in study.reports.items():
        level = 2
        if len(study.seeds) > 1:
            lines += [f"## Seed {seed}", ""]
            level = 3
        lines += render_sections(report, figures[seed], level)
    return "\n".join(lines)


def write_study(study: Study, out_dir: str | Path) -> Path:
    """report.md, report.json (with "findings"), decomposition.csv and the figures; returns report.md."""
    from retu.report.build import table_csv
    from retu.report.plots import plot_paradigms

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    many = len(study.seeds) > 1
    figures = {s: write_figures(r, out, f"-seed{s}" if many else "") for s, r in study.reports.items()}
    paradigm_figure = None
    if study.paradigms:
        plot_paradigms(list(study.paradigms), out / "paradigms.png")
        paradigm_figure = "paradigms.png"
    atomic_write(out / "decomposition.csv", table_csv({s: r.tables for s, r in study.reports.items()}))
    atomic_write(out / "report.json", json.dumps(study.to_dict(), indent=1))
    return atomic_write(out / "report.md", render_study(study, figures, paradigm_figure))
