"""The sequential SFT-then-RL pipeline: SFT, sub-phases, RL branches, ceiling fits, findings, report.

`run_pipeline(pcfg)` reads top to bottom, once per seed:
  1. for each SFT dataset: SFT with a validation loss, an evaluation and a checkpoint every
     sft.val_every steps;
  2. label the checkpoints' sub-phases from the validation loss (retu.phases) and choose branch
     points: one checkpoint per sub-phase reached and the recommended switch (first Stable);
  3. RL (DAPO_dc by default) from the base model (pure RL) and from every branch point, with a
     periodic evaluation against cumulative FLOPs; a branch's step-0 evaluation reuses the SFT run's
     evaluation of its checkpoint;
  4. optional synchronized paradigms (LUFFY, SRFT, UPT) from the base model on the same RL config;
then fit every curve's ceiling, test the paper's findings on all seeds (retu.report.findings) and
write the report, which opens with the Findings table. Every stage is a retu run directory that
resumes itself and is skipped once its run_end says ok, so a killed pipeline rerun with the same
command continues where it stopped. With `workers` > 1, steps 1 and 3-4 of different seeds, and the
stages within each step, run side by side (`retu.stage_pool`); a seed's RL waits for its SFT.

A seed S sets the stages' `seed` (data order, rollout sampling) and `data.seed` (the task's train,
validation and evaluation splits); every seed starts from the same base model, as the paper's
replications share one base model (`model.seed` in sft_overrides and rl_overrides changes it). With
`vary_base_model: true` the seed also sets `model.seed`, so each replication builds its own `base:`
model and the seeds sample the base model's variance too. The report combines the seeds and names
their base models.

With no config it runs the embedded default (retu.stages): the arithmetic task and the tiny
pretrained base model, sized to finish in about ten minutes on a laptop CPU.

    retu pipeline                                  # the embedded default, seed 0
    retu pipeline seeds=[1] run_dir=runs/pipeline-s1
    retu pipeline configs/tiny/findings.yaml       # every finding, 3 seeds
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from retu.algos.registry import ALGORITHMS
from retu.config import RunCfg
from retu.config_loader import read_top_level
from retu.engine.ceiling_watch import final_interval, sibling_prior
from retu.errors import RetuInputError
from retu.metrics import run_end_status
from retu.phases import PHASES, PhaseResult
from retu.report.study import BASE, seed_dir
from retu.stage_pool import Stage, check_workers, run_stages
from retu.stages import (DEFAULT_RL, DEFAULT_SFT, check_seeds, check_shared, check_vary_base_model, method_config,
                         pick_steps, seed_overrides, sft_phases, stage_config)

RESERVED = ("rl", "paradigms")  # subdirectories of a seed that are not datasets


@dataclass(frozen=True)
class PipelineCfg:
    """The pipeline: SFT and RL run configs (a YAML path or the embedded default, plus overrides)."""

    run_dir: str = field(default="runs/pipeline", metadata={"help": "root of all stage run directories"})
    sft_config: str | None = field(default=None, metadata={"help": "SFT run config YAML (None: embedded default)"})
    rl_config: str | None = field(default=None, metadata={"help": "RL run config YAML (None: embedded default)"})
    sft_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of every SFT run"})
    rl_overrides: tuple = field(default=(), metadata={"help": "key=value overrides of every RL run"})
    datasets: tuple = field(default=({"name": "arith", "overrides": []},),
                            metadata={"help": "SFT datasets: {name, overrides, branches} each (overrides: data.* "
                                              "keys, e.g. size; branches: as `branches`, for this dataset); the "
                                              "first is the primary one (findings F1-F3)"})
    branches: str | tuple = field(default="auto", metadata={"help": "'auto' (one per sub-phase; Stable = the switch), "
                                                                    "'switch' (the recommended switch only), SFT "
                                                                    "steps, or sub-phase names, e.g. [Adaptive, Stable]"})
    primary_branches: str | tuple | None = field(default=("Adaptive", "Stable"),
                                                 metadata={"help": "branches of the primary dataset (None: as "
                                                                   "branches)"})
    include_base: bool = field(default=True, metadata={"help": "also run RL from the base model (pure RL)"})
    prune: bool = field(default=False, metadata={"help": "stop an RL branch (of any dataset, or pure RL) once its "
                                                         "live ceiling interval lies wholly below the lower bound "
                                                         "of the best branch finished before it; rerun with false "
                                                         "to finish the pruned branches"})
    seeds: tuple = field(default=(0,), metadata={"help": "seeds, each a full replication in <run_dir>/seed-<s>"})
    vary_base_model: bool = field(default=False, metadata={"help": "each seed also builds its own base model "
                                                                   "(model.seed = seed; tiny:/base: models), so the "
                                                                   "replications sample the base model too; false: "
                                                                   "one base model for every seed, as in the paper"})
    paradigms: tuple = field(default=(), metadata={"help": "synchronized SFT-RL methods run from the base model "
                                                           "on the RL config (e.g. [luffy, srft, upt])"})
    paradigm_overrides: dict = field(default_factory=dict, metadata={"help": "per paradigm, key=value overrides "
                                                                             "(e.g. upt: [optim.lr=1e-4])"})
    workers: int = field(default=1, metadata={"help": "stages run at once, each on its share of the torch threads "
                                                      "(retu.stage_pool); on 2 cores, 2 gets through a study of many "
                                                      "stages faster (benchmarks/bench_workers.py)"})

    def __post_init__(self):
        wanted = [("branches", self.branches), ("primary_branches", self.primary_branches)]
        wanted += [(f"datasets[{ds['name']}].branches", ds["branches"]) for ds in self.datasets if "branches" in ds]
        for name, value in wanted:
            steps = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            phases = isinstance(value, tuple) and all(v in PHASES for v in value)
            if not (value in ("auto", "switch") or (value is None and name == "primary_branches")
                    or (value and (steps or phases))):
                raise RetuInputError(f"pipeline: {name} must be 'auto', 'switch', a list of SFT steps or a list of "
                                     f"sub-phases ({', '.join(PHASES)}), got {value!r}")
        for name, value in (("include_base", self.include_base), ("prune", self.prune)):
            if not isinstance(value, bool):
                raise RetuInputError(f"pipeline: {name} must be true or false, got {value!r}")
        check_workers("pipeline", self.workers)
        if self.prune and self.workers > 1:
            raise RetuInputError(f"pipeline: prune compares each branch with the branches finished before it, so it "
                                 f"runs one stage at a time; set workers: 1 (got {self.workers})")
        names = [ds["name"] for ds in self.datasets]
        bad = [n for n in names if n in RESERVED or n == BASE or n.startswith("seed-")]
        if bad or len(set(names)) != len(names):
            raise RetuInputError(f"pipeline: dataset names must be unique and not {', '.join(RESERVED)}, {BASE} or "
                                 f"seed-*, got {bad[0] if bad else names}")
        check_seeds("pipeline", self.seeds)
        check_vary_base_model("pipeline", self.vary_base_model, [
            *self.sft_overrides, *self.rl_overrides, *(o for ds in self.datasets for o in ds.get("overrides", ())),
            *(o for os_ in self.paradigm_overrides.values() for o in os_)])
        unknown = [m for m in (*self.paradigms, *self.paradigm_overrides) if m not in ALGORITHMS]
        if unknown:
            raise RetuInputError(f"pipeline: unknown paradigm '{unknown[0]}'; valid: {', '.join(ALGORITHMS)}")


def load_pipeline_config(path: str | Path | None = None, overrides: list[str] = ()) -> PipelineCfg:
    """Read a pipeline YAML (or the defaults) and apply top-level key=value overrides."""
    raw = read_top_level(PipelineCfg, path, overrides, what="pipeline")
    for name in ("branches", "primary_branches"):
        if isinstance(raw.get(name), list):
            raw[name] = tuple(raw[name])
    datasets = []
    for ds in raw.get("datasets", ()):
        if not isinstance(ds, dict) or "name" not in ds or set(ds) - {"name", "overrides", "branches"}:
            raise RetuInputError(f"{path or 'pipeline'}: each dataset needs a 'name' (and optional 'overrides', "
                                 f"'branches'), got {ds!r}")
        datasets.append({**ds, **({"branches": tuple(ds["branches"])} if isinstance(ds.get("branches"), list) else {})})
    if "datasets" in raw:
        raw["datasets"] = tuple(datasets)
    if not isinstance(raw.get("paradigm_overrides", {}), dict):
        raise RetuInputError(f"{path or 'pipeline'}: paradigm_overrides must map a method to a list of key=value")
    raw["paradigm_overrides"] = {k: list(v or []) for k, v in raw.get("paradigm_overrides", {}).items()}
    return PipelineCfg(**raw)


# ---------------------------------------------------------------------------------------------------
# Stage configs


def sft_config(pcfg: PipelineCfg, dataset: dict, seed: int = 0) -> RunCfg:
    """The SFT run of one dataset: run dir <root>/seed-<s>/<dataset name> (its name becomes the scene)."""
    overrides = [*pcfg.sft_overrides, *dataset.get("overrides", []),
                 *seed_overrides(seed, pcfg.vary_base_model),
                 f"log.run_dir={seed_dir(Path(pcfg.run_dir), seed) / dataset['name']}"]
    return stage_config(pcfg.sft_config, DEFAULT_SFT, overrides)


def rl_config(pcfg: PipelineCfg, model: str, name: str, seed: int = 0) -> RunCfg:
    """One RL branch from `model` (base model or SFT checkpoint) in <root>/seed-<s>/rl/<name>."""
    overrides = [*pcfg.rl_overrides, *seed_overrides(seed, pcfg.vary_base_model), f"model.name_or_path={model}",
                 f"log.run_dir={seed_dir(Path(pcfg.run_dir), seed) / 'rl' / name}"]
    return stage_config(pcfg.rl_config, DEFAULT_RL, overrides)


def paradigm_config(pcfg: PipelineCfg, method: str, model: str, seed: int = 0) -> RunCfg:
    """A synchronized method from the base model in <root>/seed-<s>/paradigms/<method>."""
    overrides = [*pcfg.rl_overrides, *seed_overrides(seed, pcfg.vary_base_model)]
    return method_config(pcfg.rl_config, overrides, method,
                         [*pcfg.paradigm_overrides.get(method, []), f"model.name_or_path={model}",
                          f"log.run_dir={seed_dir(Path(pcfg.run_dir), seed) / 'paradigms' / method}"])


# ---------------------------------------------------------------------------------------------------
# Branch points


def choose_branches(phases: PhaseResult, available: list[int], wanted: tuple[str, ...] = PHASES) -> list[int]:
    """One checkpoint per wanted sub-phase reached, among saved checkpoints.

    Adaptive: the middle Adaptive checkpoint after step 0; Stable: the recommended switch (first
    Stable); Mild and Severe: their first checkpoint. Steps without a saved checkpoint are skipped.

    >>> import numpy as np
    >>> from retu.phases import detect_phases
    >>> p = detect_phases(np.array([0, 50, 100, 150, 200, 250]), np.array([2.0, 1.2, 1.0, 1.01, 1.05, 1.3]))
    >>> choose_branches(p, [50, 100, 150, 200, 250]), choose_branches(p, [50, 100, 150, 200, 250], ("Adaptive", "Stable"))
    ([50, 100, 200, 250], [50, 100])
    """
    by_phase: dict[str, list[int]] = {}
    for step, phase in zip(phases.steps, phases.phases, strict=True):
        if int(step) in available:
            by_phase.setdefault(phase, []).append(int(step))
    picks = []
    if "Adaptive" in wanted and by_phase.get("Adaptive"):
        adaptive = by_phase["Adaptive"]
        picks.append(adaptive[(len(adaptive) - 1) // 2])
    if "Stable" in wanted and phases.recommended_step in available:
        picks.append(phases.recommended_step)
    picks += [by_phase[p][0] for p in ("Mild", "Severe") if p in wanted and by_phase.get(p)]
    return sorted(set(picks))


def branch_points(wanted: str | tuple, sft_run: Path) -> list[tuple[str, str]]:
    """(model path, branch name) of the RL runs that start from this SFT run's checkpoints: `wanted`
    is "auto" (every sub-phase), "switch", SFT steps, or sub-phase names."""
    from retu.engine.checkpoints import checkpoint_dir, list_checkpoints, step_of

    if wanted == "auto" or (isinstance(wanted, tuple) and all(w in PHASES for w in wanted)):
        steps = choose_branches(sft_phases(sft_run), [step_of(p) for p in list_checkpoints(sft_run)],
                                PHASES if wanted == "auto" else wanted)
    else:
        steps = pick_steps(sft_run, wanted, "branches")
    return [(str(checkpoint_dir(sft_run, s)), f"{sft_run.name}-step{s}") for s in steps]


def branch_order(pcfg: PipelineCfg, sft_cfgs: list[RunCfg], base: str) -> list[tuple[str, str]]:
    """The RL branches as (model, name) in the order they run: pure RL from the base model, then each
    dataset's branches by SFT step. With pruning, each dataset's latest checkpoint comes first and
    pure RL last, so the likely best branches set the bar the others must reach."""
    groups = []
    for i, (ds, cfg) in enumerate(zip(pcfg.datasets, sft_cfgs, strict=True)):
        wanted = pcfg.primary_branches if i == 0 and pcfg.primary_branches is not None else pcfg.branches
        groups.append(branch_points(ds.get("branches", wanted), Path(cfg.log.run_dir)))
    pure = [(base, BASE)] if pcfg.include_base else []
    if pcfg.prune:
        return [b for g in groups for b in g[::-1]] + pure
    return pure + [b for g in groups for b in g]


# ---------------------------------------------------------------------------------------------------
# The pipeline


def check_stages(pcfg: PipelineCfg) -> dict[int, list[RunCfg]]:
    """Every seed's SFT configs, with every stage config checked (and compared) before anything trains."""
    out = {}
    for seed in pcfg.seeds:
        sfts = [sft_config(pcfg, ds, seed) for ds in pcfg.datasets]
        base = sfts[0].model.name_or_path
        stages = {f"sft {c.log.run_dir}": c for c in sfts}
        stages["rl base"] = rl_config(pcfg, base, BASE, seed)
        stages.update({f"paradigm {m}": paradigm_config(pcfg, m, base, seed) for m in pcfg.paradigms})
        check_shared(stages)
        out[seed] = sfts
    return out


def train_branch(cfg: RunCfg, *, progress: bool, logs: dict[str, Path], prune: bool) -> None:
    """One RL branch. The branches that finished before it lend it their curve shape (and, when
    pruning, the bar it must reach); `logs` maps each branch of its seed to its metrics.jsonl."""
    from retu.engine.rl import run_rl

    mine = Path(cfg.log.run_dir) / "metrics.jsonl"
    finished = [p for p in logs.values() if p != mine and run_end_status(p) in ("ok", "pruned")]
    rivals = {p.parent.name: final_interval(p) for p in finished} if prune else {}
    run_rl(cfg, progress=progress, rivals={n: iv for n, iv in rivals.items() if iv is not None},
           prior=sibling_prior(finished))


def seed_waves(pcfg: PipelineCfg, seed: int, sft_cfgs: list[RunCfg]) -> Iterator[list[Stage]]:
    """One seed's stages in two waves: SFT per dataset, then the RL branches (and from the base)
    and the paradigms, whose branch points come from the finished SFT runs."""
    from retu.engine.rl import run_rl
    from retu.engine.sft import run_sft

    yield [Stage(cfg, run_sft, f"[pipeline] seed {seed}: SFT {cfg.log.run_dir}") for cfg in sft_cfgs]
    base = sft_cfgs[0].model.name_or_path
    branches = [(m, rl_config(pcfg, m, n, seed)) for m, n in branch_order(pcfg, sft_cfgs, base)]
    logs = {Path(c.log.run_dir).name: Path(c.log.run_dir) / "metrics.jsonl" for _, c in branches}
    train = partial(train_branch, logs=logs, prune=pcfg.prune)
    done = ("ok", "pruned") if pcfg.prune else ("ok",)
    yield [*(Stage(cfg, train, f"[pipeline] seed {seed}: RL {Path(cfg.log.run_dir).name} from {model}", done)
             for model, cfg in branches),
           *(Stage(paradigm_config(pcfg, m, base, seed), run_rl, f"[pipeline] seed {seed}: {m} from {base}")
             for m in pcfg.paradigms)]


def run_pipeline(pcfg: PipelineCfg, *, echo=print, progress: bool = True) -> Path:
    """Run (or resume) every stage of every seed and write <run_dir>/report/report.md; returns its path."""
    from retu.engine.run import require_one_process
    from retu.report.study import build_study, write_layout, write_study

    require_one_process("retu pipeline")
    root = Path(pcfg.run_dir)
    stages = check_stages(pcfg)
    write_layout(root, list(pcfg.seeds), [ds["name"] for ds in pcfg.datasets], list(pcfg.paradigms))
    run_stages([seed_waves(pcfg, seed, cfgs) for seed, cfgs in stages.items()], workers=pcfg.workers, echo=echo,
               progress=progress)
    return write_study(build_study(root), root / "report")
