"""The paradigm comparison of the paper's Fig. 2: pure SFT, pure RL, LUFFY, SRFT, UPT and SFT-then-RL
from one base model, on one compute axis, each with a fitted ceiling.

`run_compare(ccfg)` reads top to bottom:
  1. SFT from the base model (pure SFT; also the first leg of SFT-then-RL);
  2. one RL run from the base model per RL-family method (pure RL = DAPO_dc by default, LUFFY, SRFT,
     UPT), each its preset on the same RL config;
  3. SFT-then-RL: RL (DAPO_dc) from the SFT checkpoint at the switch point, by default the
     recommended switch of the SFT validation loss (first Stable checkpoint, `retu.phases`);
  4. every curve on cumulative FLOPs from the base model (SFT-then-RL starts at the SFT FLOPs of its
     checkpoint), fitted with `retu.scaling.fit_ceiling` from its own start; compare.md with the table
     of fitted ceilings, compare.png, compare.csv and compare.json.
Each seed (`seeds`, as in `retu pipeline`: data order, sampling and the task's splits; one base
model) runs all of this in <run_dir>/seed-<s>/, and the report shows each paradigm's mean curve with
its 95% interval across seeds and the seeds' ceilings combined (`retu.report.paradigms.mean_over_seeds`).
Every run is a retu run directory that resumes itself and is skipped once its run_end says ok, so a
killed comparison rerun with the same command continues where it stopped; `workers` runs several at
once (`retu.stage_pool`).

    retu compare configs/tiny/compare.yaml
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from retu.algos.registry import ALGORITHMS
from retu.config import RunCfg
from retu.config_loader import read_top_level
from retu.errors import RetuInputError
from retu.report.paradigms import Paradigm, mean_over_seeds, paradigm_curve
from retu.report.study import model_label, render_base_models, seed_dir
from retu.stage_pool import Stage, check_workers, run_stages
from retu.stages import (DEFAULT_SFT, check_seeds, check_shared, check_vary_base_model, method_config, pick_steps,
                         seed_overrides, stage_config)

SFT, SFT_THEN_RL = "sft", "sft_then_rl"
METHODS = (SFT, *ALGORITHMS, SFT_THEN_RL)
LABELS = {SFT: "pure SFT", "grpo": "pure RL (GRPO)", "dapo_d": "pure RL (DAPO_d)", "dapo_dc": "pure RL (DAPO_dc)",
          "luffy": "LUFFY", "srft": "SRFT", "upt": "UPT", SFT_THEN_RL: "SFT-then-RL"}


@dataclass(frozen=True)
class CompareCfg:
    """The comparison: which paradigms, and the SFT and RL run configs they share."""

    run_dir: str = field(default="runs/compare", metadata={"help": "root of every run directory and the report"})
    sft_config: str | None = field(default=None, metadata={"help": "SFT run config YAML (None: the pipeline's "
                                                                   "embedded default)"})
    rl_config: str | None = field(default=None, metadata={"help": "RL run config YAML shared by every RL-family "
                                                                  "method (None: the pipeline's embedded default)"})
    sft_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of the SFT run"})
    rl_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of every RL run"})
    methods: tuple = field(default=(SFT, "dapo_dc", "luffy", "srft", "upt", SFT_THEN_RL),
                           metadata={"help": f"paradigms to run: {', '.join(METHODS)}"})
    method_overrides: dict = field(default_factory=dict, metadata={"help": "per method, key=value overrides of its "
                                                                           "run (e.g. upt: [optim.lr=5e-4])"})
    switch: str | int = field(default="auto", metadata={"help": "SFT-then-RL's SFT step: 'auto' (recommended "
                                                                "switch) or a saved checkpoint step"})
    then_rl_algo: str = field(default="dapo_dc", metadata={"help": "RL algorithm of SFT-then-RL"})
    seeds: tuple = field(default=(0,), metadata={"help": "seeds, each a full comparison in <run_dir>/seed-<s>; the "
                                                         "report shows the means with 95% intervals across seeds"})
    vary_base_model: bool = field(default=False, metadata={"help": "each seed also builds its own base model "
                                                                   "(model.seed = seed; tiny:/base: models); false: "
                                                                   "one base model for every seed"})
    workers: int = field(default=1, metadata={"help": "runs at once, each on its share of the torch threads "
                                                      "(retu.stage_pool): SFT beside the RL methods"})

    def __post_init__(self):
        unknown = [m for m in (*self.methods, *self.method_overrides) if m not in METHODS]
        if unknown:
            raise RetuInputError(f"compare: unknown method '{unknown[0]}'; valid: {', '.join(METHODS)}")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise RetuInputError("compare: methods must be a non-empty list without repeats")
        if self.then_rl_algo not in ALGORITHMS:
            raise RetuInputError(f"compare: then_rl_algo must be one of {', '.join(ALGORITHMS)}")
        if self.switch != "auto" and (not isinstance(self.switch, int) or self.switch < 1):
            raise RetuInputError(f"compare: switch must be 'auto' or a positive SFT step, got {self.switch!r}")
        check_seeds("compare", self.seeds)
        check_vary_base_model("compare", self.vary_base_model, [
            *self.sft_overrides, *self.rl_overrides, *(o for os_ in self.method_overrides.values() for o in os_)])
        check_workers("compare", self.workers)


def load_compare_config(path: str | Path | None = None, overrides: list[str] = ()) -> CompareCfg:
    """Read a compare YAML (or the defaults) and apply top-level key=value overrides."""
    raw = read_top_level(CompareCfg, path, overrides, what="compare")
    if not isinstance(raw.get("method_overrides", {}), dict):
        raise RetuInputError(f"{path or 'compare'}: method_overrides must map a method to a list of key=value")
    raw["method_overrides"] = {k: list(v or []) for k, v in raw.get("method_overrides", {}).items()}
    return CompareCfg(**raw)


# ---------------------------------------------------------------------------------------------------
# Run configs


def sft_run_config(ccfg: CompareCfg, seed: int = 0) -> RunCfg:
    """The SFT run (pure SFT and SFT-then-RL's first leg) in <root>/seed-<s>/sft; its model is the base model."""
    overrides = [*ccfg.sft_overrides, *ccfg.method_overrides.get(SFT, []),
                 *seed_overrides(seed, ccfg.vary_base_model),
                 f"log.run_dir={seed_dir(Path(ccfg.run_dir), seed) / SFT}"]
    return stage_config(ccfg.sft_config, DEFAULT_SFT, overrides)


def rl_run_config(ccfg: CompareCfg, method: str, model: str, seed: int = 0) -> RunCfg:
    """The RL run of `method` from `model` in <root>/seed-<s>/<method>, with the method's preset and overrides."""
    algo = ccfg.then_rl_algo if method == SFT_THEN_RL else method
    overrides = [*ccfg.rl_overrides, *seed_overrides(seed, ccfg.vary_base_model)]
    return method_config(ccfg.rl_config, overrides, algo,
                         [*ccfg.method_overrides.get(method, []), f"model.name_or_path={model}",
                          f"log.run_dir={seed_dir(Path(ccfg.run_dir), seed) / method}"])


def switch_checkpoint(ccfg: CompareCfg, sft_dir: Path) -> Path:
    """SFT-then-RL's branch: the checkpoint at `switch`, or at the recommended switch (else the last)."""
    from retu.engine.checkpoints import checkpoint_dir

    (step,) = pick_steps(sft_dir, "switch" if ccfg.switch == "auto" else ccfg.switch, "switch")
    return checkpoint_dir(sft_dir, step)


# ---------------------------------------------------------------------------------------------------
# The comparison


def run_compare(ccfg: CompareCfg, *, echo=print, progress: bool = True) -> Path:
    """Run (or resume) every paradigm of every seed and write <run_dir>/report/compare.md; returns its path."""
    from retu.engine.rl import run_rl
    from retu.engine.run import require_one_process
    from retu.engine.sft import run_sft

    require_one_process("retu compare")

    def waves(seed: int) -> Iterator[list[Stage]]:
        def stage(name: str, cfg: RunCfg, fn) -> Stage:
            return Stage(cfg, fn, f"[compare] seed {seed}: {LABELS[name]}: {cfg.log.run_dir}")

        sft = [stage(SFT, sft_cfgs[seed], run_sft)] if SFT in ccfg.methods or SFT_THEN_RL in ccfg.methods else []
        yield [*sft, *(stage(method, cfg, run_rl) for method, cfg in rl_cfgs[seed].items())]
        if SFT_THEN_RL in ccfg.methods:
            branch = switch_checkpoint(ccfg, Path(sft_cfgs[seed].log.run_dir))
            yield [stage(SFT_THEN_RL, rl_run_config(ccfg, SFT_THEN_RL, str(branch), seed), run_rl)]

    sft_cfgs, rl_cfgs = {}, {}
    for seed in ccfg.seeds:  # every run config is checked before anything trains
        sft_cfgs[seed] = sft_run_config(ccfg, seed)
        base = sft_cfgs[seed].model.name_or_path
        rl_cfgs[seed] = {m: rl_run_config(ccfg, m, base, seed) for m in ccfg.methods if m in ALGORITHMS}
        then = {SFT_THEN_RL: rl_run_config(ccfg, SFT_THEN_RL, base, seed)} if SFT_THEN_RL in ccfg.methods else {}
        check_shared({SFT: sft_cfgs[seed], **rl_cfgs[seed], **then})
    run_stages([waves(seed) for seed in ccfg.seeds], workers=ccfg.workers, echo=echo, progress=progress)
    root = Path(ccfg.run_dir)
    paradigms = [mean_over_seeds([paradigm_curve(m, LABELS[m], seed_dir(root, s) / m) for s in ccfg.seeds])
                 for m in ccfg.methods]
    base_models = {s: model_label(c.model.name_or_path, c.model.seed) for s, c in sft_cfgs.items()}
    return write_compare(paradigms, root / "report", base_models)


def render_compare(paradigms: list[Paradigm], base_models: dict[int, str] | None = None) -> str:
    """compare.md: the base model(s), the table of fitted ceilings and the ranking."""
    seeds = paradigms[0].seeds
    over = f"means over {seeds} seeds, ceilings combined across seeds with 95% intervals" if seeds > 1 else "one seed"
    models = render_base_models(base_models or {})
    lines = ["# Paradigm comparison", "",
             "Accuracy (%) on the held-out set against cumulative training FLOPs from the base model; each "
             f"ceiling is fitted from the paradigm's own start (SFT-then-RL: its switch checkpoint); {over}.",
             *(["", models] if models else []), "",
             "| paradigm | steps | EFLOPs | start | best | final | fitted ceiling [95% CI] | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for p in paradigms:
        r = p.row()
        ceiling = "-" if p.ceiling is None else p.ceiling.text()
        lines.append(f"| {p.label} | {r['steps']} | {r['eflops']:.4g} | {r['start']:.1f} | {r['best']:.1f} | "
                     f"{r['final']:.1f} | {ceiling} | {p.note} |")
    trusted = sorted((p for p in paradigms if p.ceiling is not None and p.fit is not None and not p.fit.flagged),
                     key=lambda p: -p.ceiling.value)
    lines.append("")
    if trusted:
        ranking = " > ".join(f"{p.label} ({p.ceiling.value:.1f})" for p in trusted)
        lines.append(f"Trusted ceilings, highest first: {ranking}.")
    else:
        lines.append("No paradigm has a trusted (saturated, uncollapsed) ceiling; compare best observed values.")
    best = max(paradigms, key=lambda p: p.y.max())
    lines += [f"Best observed accuracy: {best.label}, {best.y.max():.1f}%.", "",
              "![accuracy against compute](compare.png)", ""]
    return "\n".join(lines)


def write_compare(paradigms: list[Paradigm], out_dir: Path, base_models: dict[int, str] | None = None) -> Path:
    """compare.md, compare.png, compare.csv and compare.json in out_dir; returns compare.md."""
    import csv
    import io
    import json

    from retu.data.io import atomic_write
    from retu.report.plots import plot_paradigms

    out_dir.mkdir(parents=True, exist_ok=True)
    plot_paradigms(paradigms, out_dir / "compare.png")
    rows = [p.row() for p in paradigms]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows([{**r, "ceiling": "" if r["ceiling"] is None else r["ceiling"]["value"]} for r in rows])
    atomic_write(out_dir / "compare.csv", buf.getvalue())
    curves = {p.method: {"eflops": p.x.tolist(), "accuracy": p.y.tolist(), "steps": p.steps.tolist(),
                         "fit": None if p.fit is None else p.fit.to_dict()} for p in paradigms}
    atomic_write(out_dir / "compare.json", json.dumps({"table": rows, "curves": curves}, indent=1))
    return atomic_write(out_dir / "compare.md", render_compare(paradigms, base_models))
