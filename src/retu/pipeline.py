"""The sequential SFT-then-RL pipeline: SFT, sub-phases, RL branches, ceiling fits, report.

`run_pipeline(pcfg)` reads top to bottom:
  1. for each SFT dataset: SFT with a validation loss and a checkpoint every sft.val_every steps;
  2. label the checkpoints' sub-phases from the validation loss (retu.phases) and choose branch
     points: one checkpoint per sub-phase reached and the recommended switch (first Stable);
  3. RL (DAPO_dc by default) from the base model (pure RL) and from every branch point, with a
     periodic evaluation against cumulative FLOPs;
  4. fit each RL curve's ceiling, build the A_post = P_sft + PL_rl tables and write the report,
     which also compares SFT-then-RL with pure RL and pure SFT.
Every stage is a retu run directory that resumes itself and is skipped once its run_end says ok, so
a killed pipeline rerun with the same command continues where it stopped.

With no config it runs the embedded default: the arithmetic task and the tiny pretrained base
model, sized to finish in a few minutes on a laptop CPU.

    retu pipeline                                  # the embedded default
    retu pipeline configs/tiny/pipeline.yaml       # the same, as a file to edit
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from retu.config import RunCfg, load_config, read_top_level
from retu.errors import RetuInputError
from retu.metrics import read_records, read_series
from retu.phases import PhaseResult, detect_phases

# The embedded default (DESIGN.md section 6), as overrides of retu.config's defaults. SFT on 192 unique
# problems overfits within 300 steps, so every sub-phase appears (validation-loss minimum near step 200,
# Mild and Severe after it); DAPO_dc at lr 1e-4 on the 1-5-step mix of 5000 other problems improves on
# a ~25%-accurate checkpoint without the drop lr 2e-4 gives there. Both evaluate the same 200 problems.
DEFAULT_SFT = ["kind=sft", "model.name_or_path=base:1m", "data.train=arith", "data.arith_n_train=192",
               "data.arith_n_eval=200", "optim.lr=2.0e-3", "optim.batch_size=32", "optim.max_steps=300",
               "sft.val_every=25", "eval.every=50", "eval.max_new_tokens=64", "eval.batch_size=200"]
DEFAULT_RL = ["kind=rl", "loss.algo=dapo_dc", "data.train=arith", "data.arith_n_eval=200", "optim.lr=1.0e-4",
              "optim.batch_size=8", "optim.max_steps=16", "rollout.group_size=8", "rollout.temperature=1.0",
              "rollout.updates_per_batch=1", "rollout.max_gen_rounds=3", "data.max_response_len=64",
              "eval.every=4", "eval.max_new_tokens=64", "eval.batch_size=200", "log.save_every=4"]


@dataclass(frozen=True)
class PipelineCfg:
    """The pipeline: SFT and RL run configs (a YAML path or the embedded default, plus overrides)."""

    run_dir: str = field(default="runs/pipeline", metadata={"help": "root of all stage run directories"})
    sft_config: str | None = field(default=None, metadata={"help": "SFT run config YAML (None: embedded default)"})
    rl_config: str | None = field(default=None, metadata={"help": "RL run config YAML (None: embedded default)"})
    sft_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of every SFT run"})
    rl_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of every RL run"})
    datasets: tuple = field(default=({"name": "arith", "overrides": []},),
                            metadata={"help": "SFT datasets: {name, overrides} each (data.* keys, e.g. size)"})
    branches: str | tuple = field(default="auto", metadata={"help": "'auto' (one per sub-phase + switch), 'switch' "
                                                                    "(the recommended switch only) or SFT steps"})
    include_base: bool = field(default=True, metadata={"help": "also run RL from the base model (pure RL)"})


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] = ()) -> PipelineCfg:
    """Read a pipeline YAML (or the defaults) and apply top-level key=value overrides."""
    raw = read_top_level(PipelineCfg, path, overrides, what="pipeline")
    if isinstance(raw.get("branches"), list):
        raw["branches"] = tuple(int(s) for s in raw["branches"])
    if isinstance(raw.get("branches"), str) and raw["branches"] not in ("auto", "switch"):
        raise RetuInputError(f"{path or 'pipeline'}: branches must be 'auto', 'switch' or a list of SFT steps, "
                             f"got '{raw['branches']}'")
    for ds in raw.get("datasets", ()):
        if not isinstance(ds, dict) or "name" not in ds:
            raise RetuInputError(f"{path or 'pipeline'}: each dataset needs a 'name' (and optional 'overrides')")
    return PipelineCfg(**raw)


# ---------------------------------------------------------------------------------------------------
# Stage configs


def stage_config(path: str | None, defaults: list[str], overrides: list[str]) -> RunCfg:
    return load_config(path, overrides) if path else load_config(None, [*defaults, *overrides])


def sft_config(pcfg: PipelineCfg, dataset: dict) -> RunCfg:
    """The SFT run of one dataset: run dir <root>/<dataset name> (its name becomes the scene)."""
    overrides = [*pcfg.sft_overrides, *dataset.get("overrides", []), f"log.run_dir={Path(pcfg.run_dir) / dataset['name']}"]
    return stage_config(pcfg.sft_config, DEFAULT_SFT, overrides)


def rl_config(pcfg: PipelineCfg, model: str, name: str) -> RunCfg:
    """One RL branch from `model` (base model or SFT checkpoint) in <root>/rl/<name>."""
    overrides = [*pcfg.rl_overrides, f"model.name_or_path={model}", f"log.run_dir={Path(pcfg.run_dir) / 'rl' / name}"]
    return stage_config(pcfg.rl_config, DEFAULT_RL, overrides)


def is_done(run_dir: str | Path) -> bool:
    """True when the run directory's last run_end says ok (the stage is not run again)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return False
    ends = [r for r in read_records(path) if r.get("kind") == "run_end"]
    return bool(ends) and ends[-1].get("status") == "ok"


# ---------------------------------------------------------------------------------------------------
# Branch points


def choose_branches(phases: PhaseResult, available: list[int]) -> list[int]:
    """One checkpoint per sub-phase reached plus the recommended switch, among saved checkpoints.

    Adaptive: the middle Adaptive checkpoint after step 0; Stable: the recommended switch (first
    Stable); Mild and Severe: their first checkpoint. Steps without a saved checkpoint are skipped.

    >>> import numpy as np
    >>> p = detect_phases(np.array([0, 50, 100, 150, 200, 250]), np.array([2.0, 1.2, 1.0, 1.01, 1.05, 1.3]))
    >>> choose_branches(p, [50, 100, 150, 200, 250])
    [50, 100, 200, 250]
    """
    by_phase: dict[str, list[int]] = {}
    for step, phase in zip(phases.steps, phases.phases, strict=True):
        if int(step) in available:
            by_phase.setdefault(phase, []).append(int(step))
    picks = []
    if by_phase.get("Adaptive"):
        adaptive = by_phase["Adaptive"]
        picks.append(adaptive[(len(adaptive) - 1) // 2])
    if phases.recommended_step in available:
        picks.append(phases.recommended_step)
    picks += [by_phase[p][0] for p in ("Mild", "Severe") if by_phase.get(p)]
    return sorted(set(picks))


def sft_phases(run_dir: Path) -> PhaseResult:
    """Sub-phases of an SFT run from its logged validation losses."""
    series = read_series(run_dir / "metrics.jsonl", "loss/val")
    return detect_phases(series.step, series.value, source=str(run_dir))


# ---------------------------------------------------------------------------------------------------
# Comparison of paradigms (for the report)


def best_observed(run_dir: Path, metric: str = "eval/overall") -> float | None:
    """Highest logged value of `metric` in a run (None when it never evaluated)."""
    try:
        return float(read_series(run_dir / "metrics.jsonl", metric).value.max())
    except RetuInputError:
        return None


def best_sft(report, sft_dir: Path) -> float | None:
    """Pure SFT's best accuracy on a dataset: its own evaluations and the branch-point evaluations of
    its checkpoints (P_sft, measured by each RL run at step 0 on the same problems)."""
    scores = [r.P_sft for t in report.tables if t.scene == sft_dir.name for r in t.rows if r.step]
    own = best_observed(sft_dir)
    scores += [own] if own is not None else []
    return max(scores) if scores else None


def paradigm_summary(report, sft_dirs: list[Path], rl_root: Path) -> str:
    """Markdown paragraph: P0, each branch's decomposition, and SFT-then-RL vs pure RL vs pure SFT."""
    base = next(((c, f) for c, f in report.fits if c.scene == "base"), None)
    lines = ["## Paradigms on this task", ""]
    if base is not None:
        c, f = base
        lines.append(f"- Base model P0 = {f.p_start:.1f}%. Pure RL from it: ceiling {f.ceiling_text()}, "
                     f"best observed {c.y.max():.1f}%.")
    sft_best = {d.name: best_sft(report, d) for d in sft_dirs}
    for name, best in sft_best.items():
        if best is not None:
            lines.append(f"- Pure SFT ({name}): best accuracy of any evaluated checkpoint {best:.1f}%.")
    trusted = [(t.scene, r) for t in report.tables for r in t.rows if r.A_post is not None and not r.flags and r.step]
    if trusted:
        scene, row = max(trusted, key=lambda sr: sr[1].A_post)
        rl_best = max(c.y.max() for c, _ in report.fits if c.scene != "base")
        lines.append(f"- SFT-then-RL: highest trusted ceiling A_post = {row.A_post:.1f}% ({scene}, SFT step {row.step}: "
                     f"P_sft {row.P_sft:.1f} + PL_rl {row.PL_rl:.1f}); best observed {rl_best:.1f}%.")
        verdicts = []
        if base is not None:
            rival = base[1].ceiling_bounds[1] if not base[1].saturated else base[1].ceiling
            verdicts.append(f"{'beat' if row.A_post > rival else 'did not beat'} pure RL ({rival:.1f}%)")
        known = [b for b in sft_best.values() if b is not None]
        if known:
            verdicts.append(f"{'beat' if row.A_post > max(known) else 'did not beat'} pure SFT ({max(known):.1f}%)")
        if verdicts:
            lines.append(f"- Verdict: SFT-then-RL {' and '.join(verdicts)} on this task.")
    else:
        lines.append("- No SFT branch has a trusted (saturated, uncollapsed) ceiling; no verdict.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The pipeline


def run_stage(cfg: RunCfg, train, echo, label: str) -> None:
    """Print `label` (with " (done)" when finished) and run `train(cfg)` unless its run_end says ok."""
    done = is_done(cfg.log.run_dir)
    echo(label + (" (done)" if done else ""))
    if not done:
        train(cfg)


def pick_steps(sft_run: Path, wanted: str | int | tuple, field_name: str) -> list[int]:
    """SFT steps with a saved checkpoint to branch from: "switch" (the recommended switch, else the
    last checkpoint), one step, or a tuple of steps.

    Raises:
        RetuInputError: No checkpoint saved, or none at a requested step (naming `field_name`).
    """
    from retu.engine.checkpoints import list_checkpoints, step_of

    saved = [step_of(p) for p in list_checkpoints(sft_run)]
    if not saved:
        raise RetuInputError(f"{sft_run}: the SFT run saved no checkpoint to branch from")
    if wanted == "switch":
        step = sft_phases(sft_run).recommended_step
        return [step if step in saved else max(saved)]
    steps = list(wanted) if isinstance(wanted, tuple) else [wanted]
    missing = [s for s in steps if s not in saved]
    if missing:
        raise RetuInputError(f"{field_name}: no checkpoint at SFT step {missing[0]} in {sft_run} "
                             f"(saved: {', '.join(map(str, saved))})")
    return steps


def _branch_points(pcfg: PipelineCfg, sft_run: Path) -> list[tuple[str, str]]:
    """(model path, branch name) of the RL runs that start from this SFT run's checkpoints."""
    from retu.engine.checkpoints import checkpoint_dir, list_checkpoints, step_of

    if pcfg.branches == "auto":
        steps = choose_branches(sft_phases(sft_run), [step_of(p) for p in list_checkpoints(sft_run)])
    else:
        steps = pick_steps(sft_run, pcfg.branches, "branches")
    return [(str(checkpoint_dir(sft_run, s)), f"{sft_run.name}-step{s}") for s in steps]


def run_pipeline(pcfg: PipelineCfg, *, echo=print) -> Path:
    """Run (or resume) every stage and write <run_dir>/report/report.md; returns its path."""
    from retu.engine.rl import run_rl
    from retu.engine.run import require_one_process
    from retu.engine.sft import run_sft
    from retu.report.build import build_report, write_report

    require_one_process("retu pipeline")
    root = Path(pcfg.run_dir)
    sft_cfgs = [sft_config(pcfg, ds) for ds in pcfg.datasets]  # every stage config is checked up front
    rl_config(pcfg, sft_cfgs[0].model.name_or_path, "base")
    for cfg in sft_cfgs:
        run_stage(cfg, run_sft, echo, f"[pipeline] SFT {cfg.log.run_dir}")
    branches = [(sft_cfgs[0].model.name_or_path, "base")] if pcfg.include_base else []
    for cfg in sft_cfgs:
        branches += _branch_points(pcfg, Path(cfg.log.run_dir))
    for model, name in branches:
        run_stage(rl_config(pcfg, model, name), run_rl, echo, f"[pipeline] RL {name} from {model}")
    report = build_report([root])
    extra = paradigm_summary(report, [Path(c.log.run_dir) for c in sft_cfgs], root / "rl")
    return write_report(report, root / "report", extra)
