"""Every algorithm variant by name, and the six algorithm presets the trainer runs.

Four kinds of variant, each a flat dict literal of `Variant(fn, paper, status)` keyed by the
function's own name (no decorators, no discovery: what exists is what is written here):

    advantage    fn(rewards, group_ids=None, *, hp) -> AdvantageOutput
    term         fn(inp, *, hp) -> TermOutput            raw per-token loss
    aggregation  fn(inp) -> weights [B, T]                loss = sum(per_token * weights)
    method       fn(inp, *, hp) -> LossOutput            hybrids that aggregate themselves

`build(kind, name, **kwargs)` checks the kwargs against the function's signature (names, and the
allowed values of `Literal` hyperparameters) and binds them with functools.partial.
`build_loss(term, agg, **kwargs)` gives one callable `LossInputs -> LossOutput` for either a
term + aggregation pair or a method (agg None), so a trainer calls every algorithm the same way.
`ALGORITHMS` maps each algorithm name to a `Preset`: which advantage, term, aggregation and kwargs,
and the sampling flags the rollout step needs. The trainer reads this data; it never branches on
an algorithm name.

Status: "validated" = reproduces spec/vectors.json or an obviously-correct loop reference in
tests/; "experimental" = neither yet.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from retu.algos import advantages, aggregation, hybrid, policy, sft
from retu.algos.types import LossInputs, LossOutput
from retu.errors import RetuInputError

LossFn = Callable[[LossInputs], LossOutput]

GRPO = "https://arxiv.org/abs/2402.03300"
DR_GRPO = "https://arxiv.org/abs/2503.20783"
DAPO = "https://arxiv.org/abs/2503.14476"
PPO = "https://arxiv.org/abs/1707.06347"
LUFFY = "https://arxiv.org/abs/2504.14945"
SRFT = "https://arxiv.org/abs/2506.19767"
UPT = "https://arxiv.org/abs/2509.04419"
RETU = "https://arxiv.org/abs/2512.11470"


@dataclass(frozen=True)
class Variant:
    """One registered function with the paper it implements and its status."""

    fn: Callable
    paper: str
    status: str  # "validated" | "experimental"


# ---------------------------------------------------------------------------------------------------
# The registry

ADVANTAGES = {
    "grpo": Variant(advantages.grpo, GRPO, "validated"),
    "grpo_population_std": Variant(advantages.grpo_population_std, GRPO, "validated"),
    "grpo_no_std": Variant(advantages.grpo_no_std, DR_GRPO, "validated"),
}
TERMS = {
    "ppo_clip": Variant(policy.ppo_clip, PPO, "validated"),
    "grpo_clip": Variant(policy.grpo_clip, GRPO, "validated"),
    "dapo_clip": Variant(policy.dapo_clip, DAPO, "validated"),
    "pg_unclipped": Variant(policy.pg_unclipped, LUFFY, "validated"),
    "sft_nll": Variant(sft.sft_nll, RETU, "validated"),
}
AGGREGATIONS = {
    "token_mean": Variant(aggregation.token_mean, DAPO, "validated"),
    "seq_mean_token_mean": Variant(aggregation.seq_mean_token_mean, GRPO, "validated"),
    "sum_over_lmax": Variant(aggregation.sum_over_lmax, DR_GRPO, "validated"),
}
METHODS = {
    "luffy": Variant(hybrid.luffy, LUFFY, "validated"),
    "srft": Variant(hybrid.srft, SRFT, "validated"),
    "upt": Variant(hybrid.upt, UPT, "validated"),
}
REGISTRY: dict[str, dict[str, Variant]] = {
    "advantage": ADVANTAGES,
    "term": TERMS,
    "aggregation": AGGREGATIONS,
    "method": METHODS,
}


# ---------------------------------------------------------------------------------------------------
# Presets


@dataclass(frozen=True)
class Sampling:
    """What the RL step does differently per algorithm (`retu.engine.rl_step.plan_step` sizes it from the config).

    Attributes:
        dynamic_sampling: Drop groups whose rewards are all equal and sample more (DAPO).
        demos_per_group: Expert rows that replace rollouts in each group (LUFFY/SRFT: 1 of 8).
        upt_gate: UPT switch gate g (SFT iff correct rollouts <= g), or None for no gate.
    """

    dynamic_sampling: bool = False
    demos_per_group: int = 0
    upt_gate: int | None = None


@dataclass(frozen=True)
class Preset:
    """One algorithm as data: names into the registry plus the sampling flags.

    Attributes:
        advantage: Key into ADVANTAGES.
        term: Key into TERMS, or into METHODS when `agg` is None.
        agg: Key into AGGREGATIONS, or None for a method.
        kwargs: Hyperparameters for the term or method (the RETU settings).
        sampling: Rollout-side flags.
        paper: Link to the paper.
    """

    advantage: str
    term: str
    agg: str | None
    kwargs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    sampling: Sampling = Sampling()
    paper: str = ""


def _frozen(**kwargs: object) -> Mapping[str, object]:
    return MappingProxyType(kwargs)


ALGORITHMS = {
    "grpo": Preset(advantage="grpo", term="grpo_clip", agg="seq_mean_token_mean",
                   kwargs=_frozen(eps_low=0.2, eps_high=0.2), paper=GRPO),
    "dapo_d": Preset(advantage="grpo", term="grpo_clip", agg="token_mean",
                     kwargs=_frozen(eps_low=0.2, eps_high=0.2),
                     sampling=Sampling(dynamic_sampling=True), paper=DAPO),
    "dapo_dc": Preset(advantage="grpo", term="dapo_clip", agg="token_mean",
                      kwargs=_frozen(eps_low=0.2, eps_high=0.28, clip_ratio_c=10.0),
                      sampling=Sampling(dynamic_sampling=True), paper=DAPO),
    "luffy": Preset(advantage="grpo_no_std", term="luffy", agg=None,
                    kwargs=_frozen(gamma=0.1, entropy_coef=0.001, norm="lmax"),
                    sampling=Sampling(demos_per_group=1), paper=LUFFY),
    "srft": Preset(advantage="grpo_no_std", term="srft", agg=None,
                   kwargs=_frozen(gamma=0.1, entropy_coef=0.001, norm="lmax"),
                   sampling=Sampling(demos_per_group=1), paper=SRFT),
    "upt": Preset(advantage="grpo_no_std", term="upt", agg=None,
                  kwargs=_frozen(sft_coef=1.0, entropy_coef=0.001, norm="lmax"),
                  sampling=Sampling(upt_gate=0), paper=UPT),
}


# ---------------------------------------------------------------------------------------------------
# Lookup and binding


def _lookup(kind: str, name: str) -> Variant:
    if kind not in REGISTRY:
        raise RetuInputError(f"unknown variant kind {kind!r}; valid: {', '.join(REGISTRY)}")
    table = REGISTRY[kind]
    if name not in table:
        raise RetuInputError(f"unknown {kind} {name!r}; valid: {', '.join(table)}")
    return table[name]


def get_hyperparameters(fn: Callable) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a registered function, by name."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _check_kwargs(kind: str, name: str, fn: Callable, kwargs: Mapping[str, object]) -> None:
    """Raise a one-line error for unknown kwargs or values outside a Literal's choices."""
    allowed = get_hyperparameters(fn)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise RetuInputError(f"unknown kwarg(s) {', '.join(unknown)} for {kind} {name!r}; valid: {valid}")
    hints = typing.get_type_hints(fn)
    for key, value in kwargs.items():
        choices = typing.get_args(hints.get(key)) if typing.get_origin(hints.get(key)) is typing.Literal else ()
        if choices and value not in choices:
            raise RetuInputError(f"{kind} {name!r}: {key}={value!r} is not one of {', '.join(map(repr, choices))}")


def build(kind: str, name: str, **kwargs: object) -> Callable:
    """Look up a variant and bind its hyperparameters.

    Args:
        kind: "advantage", "term", "aggregation" or "method".
        name: The variant's registry key.
        **kwargs: Hyperparameters; each must be a keyword-only parameter of the function.

    Returns:
        functools.partial of the function with `kwargs` bound.

    Raises:
        RetuInputError: Unknown kind, name or kwarg; the message lists the valid ones.
    """
    variant = _lookup(kind, name)
    _check_kwargs(kind, name, variant.fn, kwargs)
    return functools.partial(variant.fn, **kwargs)


def build_loss(term: str, agg: str | None = None, **kwargs: object) -> LossFn:
    """One `LossInputs -> LossOutput` callable from a term + aggregation, or from a method.

    Args:
        term: A TERMS key (then `agg` is required) or a METHODS key (then `agg` must be None).
        agg: An AGGREGATIONS key, or None for a method.
        **kwargs: Hyperparameters of the term or method.

    Returns:
        The loss function.

    Raises:
        RetuInputError: Unknown names or kwargs, or a term without an aggregation (and vice versa).
    """
    if agg is None:
        if term not in METHODS:
            valid = ", ".join(METHODS)
            raise RetuInputError(f"{term!r} is not a method (which aggregates itself; valid: {valid}); "
                                 f"give a term an aggregation, one of: {', '.join(AGGREGATIONS)}")
        return build("method", term, **kwargs)
    if term in METHODS:
        raise RetuInputError(f"method {term!r} aggregates itself; drop agg={agg!r} and choose its normaliser "
                             "with norm='lmax' or norm='token_mean'")
    term_fn = build("term", term, **kwargs)
    agg_fn = build("aggregation", agg)
    return functools.partial(aggregation.compose_loss, term=term_fn, agg=agg_fn)


@dataclass(frozen=True)
class Algorithm:
    """A preset with its functions built: what the RL trainer holds."""

    name: str
    advantage: Callable[..., object]
    loss: LossFn
    sampling: Sampling
    preset: Preset


def resolve_preset(name: str, *, advantage: str | None = None, term: str | None = None,
                   agg: str | None = None) -> Preset:
    """A preset of ALGORITHMS with its advantage, term or aggregation replaced (None keeps the preset's).

    The preset's kwargs are its term's hyperparameters: a replaced term starts from its own signature
    defaults. The names are checked when the preset is built (`build_algorithm`).

    Args:
        name: One of ALGORITHMS.
        advantage, term, agg: Keys into ADVANTAGES, TERMS and AGGREGATIONS (as verl's `adv_estimator`,
            policy loss and `loss_agg_mode`), or None.

    Returns:
        The Preset, sampling flags unchanged.

    Raises:
        RetuInputError: Unknown algorithm name (lists the valid ones).

    >>> p = resolve_preset("dapo_dc", agg="seq_mean_token_mean")
    >>> p.advantage, p.term, p.agg, dict(p.kwargs)["eps_high"], p.sampling.dynamic_sampling
    ('grpo', 'dapo_clip', 'seq_mean_token_mean', 0.28, True)
    >>> dict(resolve_preset("dapo_dc", term="grpo_clip").kwargs)
    {}
    """
    if name not in ALGORITHMS:
        raise RetuInputError(f"unknown algorithm {name!r}; valid: {', '.join(ALGORITHMS)}")
    preset = ALGORITHMS[name]
    kwargs = preset.kwargs if term in (None, preset.term) else _frozen()
    return replace(preset, advantage=advantage or preset.advantage, term=term or preset.term,
                   agg=agg or preset.agg, kwargs=kwargs)


def build_algorithm(name: str, preset: Preset | None = None, /, **kwargs: object) -> Algorithm:
    """Build a preset of ALGORITHMS, with `kwargs` overriding its loss hyperparameters.

    Args:
        name: One of ALGORITHMS ("grpo", "dapo_d", "dapo_dc", "luffy", "srft", "upt").
        preset: The preset to build under that name (`resolve_preset`); None = ALGORITHMS[name].
        **kwargs: Loss hyperparameters overriding the preset's.

    Returns:
        Algorithm with advantage and loss callables.

    Raises:
        RetuInputError: Unknown algorithm, variant or kwarg name (lists the valid ones), or a term
            without an aggregation (and vice versa).
    """
    preset = resolve_preset(name) if preset is None else preset
    loss = build_loss(preset.term, preset.agg, **{**preset.kwargs, **kwargs})
    return Algorithm(name, build("advantage", preset.advantage), loss, preset.sampling, preset)


# ---------------------------------------------------------------------------------------------------
# Listing (for `retu list`)


@dataclass(frozen=True)
class VariantRow:
    """One row of `retu list`."""

    kind: str
    name: str
    paper: str
    status: str


def list_variants() -> list[VariantRow]:
    """Every registered variant and algorithm preset, in registry order.

    Returns:
        Rows (kind, name, paper, status); presets have kind "algorithm" and the status of their
        weakest part.
    """
    rows = [VariantRow(kind, name, v.paper, v.status) for kind, table in REGISTRY.items() for name, v in table.items()]
    for name, preset in ALGORITHMS.items():
        parts = [ADVANTAGES[preset.advantage], (TERMS | METHODS)[preset.term]]
        parts += [AGGREGATIONS[preset.agg]] if preset.agg is not None else []
        status = "validated" if all(p.status == "validated" for p in parts) else "experimental"
        rows.append(VariantRow("algorithm", name, preset.paper, status))
    return rows


__all__ = ["ADVANTAGES", "AGGREGATIONS", "ALGORITHMS", "METHODS", "REGISTRY", "TERMS", "Algorithm", "LossFn",
           "Preset", "Sampling", "Variant", "VariantRow", "build", "build_algorithm", "build_loss",
           "get_hyperparameters", "list_variants", "resolve_preset"]
