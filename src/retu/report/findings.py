"""The paper's findings as claims a run can test, with intervals and a verdict computed by code.

Each claim (`CLAIMS`) compares numbers that carry 95% intervals (`Estimate`): accuracies of single
checkpoints (Wilson interval over the evaluated problems), fitted ceilings (the fit's bootstrap
interval; an unsaturated fit's interval reaches up to its free fit), and correlations (Fisher z).
The verdict is mechanical (`verdict`): `holds` when the intervals are apart in the claimed
direction, `fails` when they are apart in the other direction, `inconclusive` when they overlap. A
claim the runs cannot test is left out with the reason (`Untested`).

With several seeds, each claim's numbers are taken per seed and combined (`combine`): the mean over
seeds, with a t interval over the seeds (k - 1 degrees of freedom), never narrower than the mean
within-seed error.

F1-F3 read the primary dataset (the first); F5-F7 compare datasets.

    F1  SFT-then-RL beats pure SFT (its best checkpoint and its fitted ceiling)
    F2  SFT-then-RL beats pure RL from the base model
    F3  switching in Stable/Mild beats switching in Adaptive
    F4  switching in Severe does not beat Stable/Mild (on the first dataset that overfits severely)
    F5  a larger SFT set gives a higher ceiling at its switch
    F6  harder SFT trajectories at equal size give a higher ceiling
    F7  the minimum validation loss predicts the ceiling (Pearson r <= -0.8)
    F8  synchronized SFT-RL (LUFFY, SRFT, UPT) from the base stays below SFT-then-RL

Reference: arXiv 2512.11470 sections 6.1-6.2 (RQ1-RQ3). This module imports numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from retu.intervals import Z95, wilson_interval

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
STABLE_OR_MILD = ("Stable", "Mild")
R_THRESHOLD = -0.8  # F7's claim: r <= -0.8 (the paper reports r = -0.90)
SHAPE_WORDS = {"n_train": "size", "difficulty": "difficulty"}


# ---------------------------------------------------------------------------------------------------
# Numbers with intervals


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval.

    Attributes:
        value: The estimate (accuracy in %, or a correlation).
        lo, hi: The interval (NaN when it is unknown).
        n: Evaluated problems behind a binomial estimate, or points behind a correlation.
        seeds: Seeds combined into it.
        how: How the interval was made ("binomial", "fit", "fit, unsaturated", "fisher z", "k seeds").
    """

    value: float
    lo: float
    hi: float
    n: int | None = None
    seeds: int = 1
    how: str = ""

    @property
    def known(self) -> bool:
        """The interval is known (its upper end may be +inf: "at least lo")."""
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    def text(self, digits: int = 1) -> str:
        """`72.4 [69.1, 75.6] (n=400)`; the interval is '?' when unknown."""
        ci = f"[{self.lo:.{digits}f}, {self.hi:.{digits}f}]" if self.known else "[?]"
        extra = [f"n={self.n}"] if self.n is not None else []
        extra += [f"{self.seeds} seeds"] if self.seeds > 1 else []
        extra += [self.how] if any(w in self.how for w in ("unsaturated", "collapsed", "at least")) else []
        return f"{self.value:.{digits}f} {ci}" + (f" ({', '.join(extra)})" if extra else "")

    def to_dict(self) -> dict:
        def num(v):
            return round(float(v), 4) if math.isfinite(v) else None

        return {"value": num(self.value), "lo": num(self.lo), "hi": num(self.hi), "n": self.n,
                "seeds": self.seeds, "how": self.how}


def binomial_estimate(percent: float, n: int | None) -> Estimate:
    """Accuracy (%) of `n` problems with its Wilson 95% interval (unknown interval without n).

    >>> binomial_estimate(50.0, 100).text()
    '50.0 [40.4, 59.6] (n=100)'
    """
    if not n:
        return Estimate(percent, math.nan, math.nan, None, how="binomial")
    return Estimate(percent, *wilson_interval(percent, n), n, how="binomial")


def fit_estimate(fit) -> Estimate:
    """A fitted ceiling (`retu.scaling.CeilingFit`) as an Estimate.

    A saturated fit gives A with its bootstrap interval. An unsaturated fit's A is only a lower
    bound: its interval runs from the bootstrap's lower end up to the free fit's ceiling.
    """
    lo, hi = fit.ceiling_ci
    how = "fit" + (", collapsed" if fit.collapsed else "")
    if not fit.saturated:
        return Estimate(fit.ceiling, lo, max(hi, fit.ceiling_bounds[1]), how=how + ", unsaturated")
    return Estimate(fit.ceiling, lo, hi, how=how)


def correlation_estimate(x: Sequence[float], y: Sequence[float]) -> Estimate:
    """Pearson r of paired values with its Fisher z 95% interval (unknown for fewer than 4 pairs).

    >>> correlation_estimate([1, 2, 3, 4, 5], [2.0, 1.9, 1.2, 1.0, 0.4]).text(2)
    '-0.98 [-1.00, -0.69] (n=5)'
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    r = float(stats.pearsonr(x, y).statistic)
    n = len(x)
    if n < 4 or abs(r) >= 1.0:
        return Estimate(r, math.nan, math.nan, n, how="fisher z")
    z, half = math.atanh(r), Z95 / math.sqrt(n - 3)
    return Estimate(r, math.tanh(z - half), math.tanh(z + half), n, how="fisher z")


def combine(estimates: Sequence[Estimate]) -> Estimate:
    """One estimate from the same quantity measured on several seeds.

    The mean over the k seeds, with half-width max(t_{k-1} x sd / sqrt(k), 1.96 x sqrt(sum se_i^2) / k),
    se_i the within-seed standard error (half-width / 1.96): the spread across seeds, but never
    less than the measurement error of the mean. One estimate is returned as it is.

    >>> e = combine([Estimate(60.0, 55.0, 65.0), Estimate(64.0, 59.0, 69.0), Estimate(62.0, 57.0, 67.0)])
    >>> round(e.value, 1), round(e.lo, 2), round(e.hi, 2), e.seeds
    (62.0, 57.03, 66.97, 3)
    """
    if len(estimates) == 1:
        return estimates[0]
    k = len(estimates)
    values = np.array([e.value for e in estimates])
    mean = float(values.mean())
    spread = float(stats.t.ppf(0.975, k - 1) * values.std(ddof=1) / math.sqrt(k))
    if all(e.known and math.isfinite(e.hi) for e in estimates):
        se = np.array([(e.hi - e.lo) / (2 * Z95) for e in estimates])
        half = max(spread, Z95 * math.sqrt(float(np.sum(se ** 2))) / k)
    else:
        half = spread
    n = sum(e.n for e in estimates) if all(e.n is not None for e in estimates) else None
    how = ", ".join(sorted({e.how for e in estimates}))
    open_above = any(e.hi == math.inf for e in estimates)  # one seed's "at least" stays open above
    return Estimate(mean, mean - half, math.inf if open_above else mean + half, n, k, how)


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
    threshold = Estimate(R_THRESHOLD, R_THRESHOLD, R_THRESHOLD, how="claim")
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


def render_findings(results: Sequence[Finding | Untested], n_seeds: int) -> str:
    """The report's opening "Findings" section: a table of tested claims, then the untested ones."""
    lines = ["## Findings", "", f"Each claim of the paper tested on these runs ({n_seeds} seed{'s' * (n_seeds > 1)}); "
             "numbers are estimates with 95% intervals. Verdict: holds / fails when the intervals are apart, "
             "inconclusive when they overlap.", "",
             "| id | claim | numbers compared | verdict |", "| --- | --- | --- | --- |"]
    for r in results:
        if isinstance(r, Finding):
            nums = "; ".join(f"{k}: {v.text(2 if 'Pearson' in k else 1)}" for k, v in r.numbers.items())
            lines.append(f"| {r.id} | {r.claim} | {nums} | **{r.verdict}** |")
    untested = [r for r in results if isinstance(r, Untested)]
    if untested:
        lines += ["", "Not tested here:"] + [f"- {r.id} ({r.claim}): {r.reason}." for r in untested]
    return "\n".join(lines)
