"""The paper's findings as claims a run can test, each with a verdict computed by code.

Each claim (`CLAIMS`) compares numbers that carry 95% intervals (`retu.report.estimates.Estimate`),
each taken per seed and combined over seeds (`retu.report.estimates.combine`). The verdict is
mechanical (`verdict`): `holds` when the intervals are apart in the claimed direction, `fails` when
they are apart in the other direction, `inconclusive` when they overlap. A claim the runs cannot
test is left out with the reason (`Untested`).

F1-F3 read the primary dataset (the first); F5-F7 compare datasets.

    F1  SFT-then-RL beats pure SFT (its best checkpoint and its fitted ceiling)
    F2  SFT-then-RL beats pure RL from the base model
    F3  switching in Stable/Mild beats switching in Adaptive
    F4  switching in Severe does not beat Stable/Mild (on the first dataset that overfits severely)
    F5  a larger SFT set gives a higher ceiling at its switch
    F6  harder SFT trajectories at equal size give a higher ceiling
    F7  the minimum validation loss predicts the ceiling (Pearson r <= -0.8)
    F8  synchronized SFT-RL (LUFFY, SRFT, UPT) from the base stays below SFT-then-RL

Reference: arXiv 2512.11470 sections 6.1-6.2 (RQ1-RQ3). No torch: the numbers come from
`retu.report.estimates` (numpy and scipy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retu.report.estimates import CORRELATION, Estimate, combine, correlation_estimate

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
STABLE_OR_MILD = ("Stable", "Mild")
R_THRESHOLD = -0.8  # F7's claim: r <= -0.8 (the paper reports r = -0.90)
SHAPE_WORDS = {"n_train": "size", "difficulty": "difficulty"}


# ---------------------------------------------------------------------------------------------------
# Verdicts


def verdict(greater: Estimate, lesser: Estimate) -> str:
    """`holds` if greater's interval lies above lesser's, `fails` if below, else `inconclusive`.

    >>> verdict(Estimate(80, 76, 84), Estimate(60, 55, 65)), verdict(Estimate(60, 55, 65), Estimate(80, 76, 84))
    ('holds', 'fails')
    >>> verdict(Estimate(66, 60, 72), Estimate(62, 55, 69))
    'inconclusive'
    """
    if not (greater.known and lesser.known):
        return INCONCLUSIVE
    if greater.lo > lesser.hi:
        return HOLDS
    if greater.hi < lesser.lo:
        return FAILS
    return INCONCLUSIVE


def all_of(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons: fails if any fails, holds if all hold."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else INCONCLUSIVE


# ---------------------------------------------------------------------------------------------------
# What the runs measured


@dataclass(frozen=True)
class Branch:
    """An RL branch from an SFT checkpoint: its step, sub-phase and fitted ceiling A_post."""

    step: int
    phase: str | None
    ceiling: Estimate


@dataclass(frozen=True)
class SceneEvidence:
    """One SFT dataset of one seed.

    Attributes:
        name: The dataset (scene) name.
        n_train: Training problems (None when unknown).
        difficulty: Mean number of operations of its training levels (None when unknown).
        min_val_loss: Minimum SFT validation loss.
        switch_step: The recommended switch (first Stable checkpoint).
        sft_best: Pure SFT's best evaluated checkpoint.
        sft_ceiling: Pure SFT's fitted ceiling (None when not fitted).
        branches: RL branches from its checkpoints.
    """

    name: str
    n_train: int | None
    difficulty: float | None
    min_val_loss: float
    switch_step: int
    sft_best: Estimate | None
    sft_ceiling: Estimate | None
    branches: tuple[Branch, ...] = ()

    def best_branch(self, phases: Sequence[str] | None = None) -> Branch | None:
        """The branch with the highest A_post (among `phases` when given)."""
        picks = [b for b in self.branches if phases is None or b.phase in phases]
        return max(picks, key=lambda b: b.ceiling.value) if picks else None

    def switch_branch(self) -> Branch | None:
        """The branch at the recommended switch, else None."""
        return next((b for b in self.branches if b.step == self.switch_step), None)


@dataclass(frozen=True)
class SeedEvidence:
    """Everything one seed's runs measured; `scenes[0]` is the primary dataset (F1-F4)."""

    seed: int
    scenes: tuple[SceneEvidence, ...]
    base_ceiling: Estimate | None = None
    paradigms: dict[str, Estimate] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Claims


@dataclass(frozen=True)
class Finding:
    """A tested claim: its verdict and the numbers compared (95% intervals)."""

    id: str
    claim: str
    verdict: str
    numbers: dict[str, Estimate]

    def to_dict(self) -> dict:
        return {"id": self.id, "claim": self.claim, "verdict": self.verdict,
                "numbers": {k: v.to_dict() for k, v in self.numbers.items()}}


@dataclass(frozen=True)
class Untested:
    """A claim the runs cannot test, and why."""

    id: str
    claim: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "claim": self.claim, "reason": self.reason}


class _Missing(Exception):
    """A claim lacks the runs it needs (the message says which)."""


def _per_seed(evidence: Sequence[SeedEvidence], pick: Callable[[SeedEvidence], Estimate | None],
              what: str) -> Estimate:
    values = [v for v in (pick(e) for e in evidence) if v is not None]
    if len(values) < len(evidence):
        raise _Missing(f"no {what} in {len(evidence) - len(values)} of {len(evidence)} seeds")
    return combine(values)


def _best_of(scene: SceneEvidence, phases=None) -> Estimate | None:
    branch = scene.best_branch(phases)
    return None if branch is None else branch.ceiling


def _best(e: SeedEvidence, phases=None) -> Estimate | None:
    return _best_of(e.scenes[0], phases)


def _f1(evidence):
    best = _per_seed(evidence, _best, "RL branch from an SFT checkpoint")
    numbers = {"best SFT-then-RL A_post": best,
               "pure SFT best checkpoint": _per_seed(evidence, lambda e: e.scenes[0].sft_best, "SFT evaluation")}
    if all(e.scenes[0].sft_ceiling is not None for e in evidence):
        numbers["pure SFT fitted ceiling"] = combine([e.scenes[0].sft_ceiling for e in evidence])
    return numbers, all_of([verdict(best, v) for k, v in numbers.items() if k.startswith("pure")])


def _f2(evidence):
    best = _per_seed(evidence, _best, "RL branch from an SFT checkpoint")
    base = _per_seed(evidence, lambda e: e.base_ceiling, "RL run from the base model")
    return {"best SFT-then-RL A_post": best, "pure RL ceiling": base}, verdict(best, base)


def _f3(evidence):
    stable = _per_seed(evidence, lambda e: _best(e, STABLE_OR_MILD), "Stable or Mild branch")
    adaptive = _per_seed(evidence, lambda e: _best(e, ("Adaptive",)), "Adaptive branch")
    return {"best Stable/Mild A_post": stable, "best Adaptive A_post": adaptive}, verdict(stable, adaptive)


def _f4(evidence):
    """On the first dataset (primary first) with a Severe branch in every seed: its Severe A_post
    against its best Stable/Mild A_post."""
    def scene(e, name):
        return next(s for s in e.scenes if s.name == name)

    names = [s.name for s in evidence[0].scenes
             if all(any(x.name == s.name and x.best_branch(("Severe",)) for x in e.scenes) for e in evidence)]
    if not names:
        raise _Missing("no dataset has a Severe branch in every seed (no SFT run overfitted severely, or no "
                       "branch was placed there)")
    name = names[0]
    stable = _per_seed(evidence, lambda e: _best_of(scene(e, name), STABLE_OR_MILD), f"Stable or Mild branch of {name}")
    severe = combine([_best_of(scene(e, name), ("Severe",)) for e in evidence])
    return {f"best Stable/Mild A_post ({name})": stable, f"Severe A_post ({name})": severe}, verdict(stable, severe)


def _switch_ceiling(scene: SceneEvidence) -> Estimate | None:
    branch = scene.switch_branch()
    return None if branch is None else branch.ceiling


def _ladder(evidence, same: str, vary: str, label: str):
    """Per value of `vary` (scenes sharing `same` with the primary), the A_post at the switch; the
    claim is that it rises with `vary`."""
    primary = evidence[0].scenes[0]
    names = [s.name for s in evidence[0].scenes if getattr(s, same) == getattr(primary, same)
             and getattr(s, vary) is not None]
    levels = sorted({getattr(s, vary) for s in evidence[0].scenes if s.name in names})
    if len(levels) < 2:
        raise _Missing(f"needs SFT sets of at least two {label} levels at equal {SHAPE_WORDS[same]}")
    numbers = {}
    for level in levels:
        name = next(s.name for s in evidence[0].scenes if s.name in names and getattr(s, vary) == level)

        def pick(e, name=name):
            scene = next((s for s in e.scenes if s.name == name), None)
            return None if scene is None else _switch_ceiling(scene)

        numbers[f"A_post at the switch, {name} ({label} {level:g})"] = _per_seed(evidence, pick, f"switch branch of {name}")
    values = list(numbers.values())
    return numbers, all_of([verdict(hi, lo) for lo, hi in zip(values, values[1:])])


def _f5(evidence):
    return _ladder(evidence, "difficulty", "n_train", "size")


def _f6(evidence):
    return _ladder(evidence, "n_train", "difficulty", "difficulty")


def _f7(evidence):
    pairs = [(s.min_val_loss, _switch_ceiling(s).value) for e in evidence for s in e.scenes
             if _switch_ceiling(s) is not None]
    configs = {s.name for e in evidence for s in e.scenes if _switch_ceiling(s) is not None}
    if len(configs) < 3:
        raise _Missing("needs at least three SFT datasets with a branch at their switch")
    r = correlation_estimate(*zip(*pairs))
    threshold = Estimate(R_THRESHOLD, R_THRESHOLD, R_THRESHOLD, how="claim", scale=CORRELATION)
    # The claim is r <= -0.8: it holds when r's interval lies below the threshold.
    return {"Pearson r (min val loss, A_post at the switch)": r}, verdict(threshold, r)


def _f8(evidence):
    methods = [m for m in ("luffy", "srft", "upt") if all(m in e.paradigms for e in evidence)]
    if not methods:
        raise _Missing("needs LUFFY, SRFT or UPT runs from the base model (pipeline paradigms)")
    best = _per_seed(evidence, _best, "RL branch from an SFT checkpoint")
    numbers = {"best SFT-then-RL A_post": best}
    numbers.update({f"{m.upper()} ceiling": combine([e.paradigms[m] for e in evidence]) for m in methods})
    return numbers, all_of([verdict(best, numbers[f"{m.upper()} ceiling"]) for m in methods])


CLAIMS: dict[str, tuple[str, Callable]] = {
    "F1": ("SFT-then-RL beats pure SFT (best checkpoint and fitted ceiling)", _f1),
    "F2": ("SFT-then-RL beats pure RL from the base model", _f2),
    "F3": ("switching in Stable/Mild beats switching in Adaptive", _f3),
    "F4": ("switching in Severe does not beat Stable/Mild", _f4),
    "F5": ("a larger SFT set gives a higher ceiling at its switch", _f5),
    "F6": ("harder SFT trajectories at equal size give a higher ceiling", _f6),
    "F7": ("the minimum SFT validation loss predicts the ceiling (Pearson r <= -0.8)", _f7),
    "F8": ("LUFFY, SRFT and UPT from the base stay below SFT-then-RL", _f8),
}


def check_claims(evidence: Sequence[SeedEvidence]) -> list[Finding | Untested]:
    """Every claim of `CLAIMS` on the seeds' evidence, in order: a Finding, or Untested with the reason."""
    if not evidence or not all(e.scenes for e in evidence):
        return [Untested(i, claim, "no SFT run") for i, (claim, _) in CLAIMS.items()]
    out: list[Finding | Untested] = []
    for cid, (claim, test) in CLAIMS.items():
        try:
            numbers, result = test(evidence)
        except _Missing as exc:
            out.append(Untested(cid, claim, str(exc)))
            continue
        out.append(Finding(cid, claim, result, numbers))
    return out


def check_each_seed(evidence: Sequence[SeedEvidence]) -> dict[int, list[Finding | Untested]]:
    """Every claim on each seed alone (`check_claims` of that seed's evidence), by seed."""
    return {e.seed: check_claims([e]) for e in evidence}


def render_seed_verdicts(per_seed: dict[int, Sequence[Finding | Untested]]) -> str:
    """A table of each claim's verdict on each seed alone: one row per claim that some seed can
    test, `-` where a seed cannot."""
    seeds = list(per_seed)
    verdicts = {s: {r.id: r.verdict for r in results if isinstance(r, Finding)} for s, results in per_seed.items()}
    ids = [cid for cid in CLAIMS if any(cid in v for v in verdicts.values())]
    lines = ["Each seed alone (the same claims on one seed's runs):", "",
             "| id | " + " | ".join(f"seed {s}" for s in seeds) + " |", "| --- |" + " --- |" * len(seeds)]
    lines += [f"| {cid} | " + " | ".join(verdicts[s].get(cid, "-") for s in seeds) + " |" for cid in ids]
    return "\n".join(lines)


def render_findings(results: Sequence[Finding | Untested], n_seeds: int,
                    per_seed: dict[int, Sequence[Finding | Untested]] | None = None) -> str:
    """The report's opening "Findings" section: a table of tested claims, with several seeds each
    seed's verdicts (`per_seed`, from `check_each_seed`), then the untested claims."""
    lines = ["## Findings", "", f"Each claim of the paper tested on these runs ({n_seeds} seed{'s' * (n_seeds > 1)}); "
             "numbers are estimates with 95% intervals. Verdict: holds / fails when the intervals are apart, "
             "inconclusive when they overlap.", "",
             "| id | claim | numbers compared | verdict |", "| --- | --- | --- | --- |"]
    for r in results:
        if isinstance(r, Finding):
            nums = "; ".join(f"{k}: {v.text(2 if 'Pearson' in k else 1)}" for k, v in r.numbers.items())
            lines.append(f"| {r.id} | {r.claim} | {nums} | **{r.verdict}** |")
    if per_seed:
        lines += ["", render_seed_verdicts(per_seed)]
    untested = [r for r in results if isinstance(r, Untested)]
    if untested:
        lines += ["", "Not tested here:"] + [f"- {r.id} ({r.claim}): {r.reason}." for r in untested]
    return "\n".join(lines)
