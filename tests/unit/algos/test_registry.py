"""Every registry entry: signature, shapes, finiteness, gradient flow, zero gradient on padding."""

import doctest
import inspect
from dataclasses import replace

import pytest
import torch

from retu.algos import advantages, aggregation, hybrid, policy, registry, sft, types
from retu.algos.registry import ALGORITHMS, REGISTRY, build, build_algorithm, build_loss, list_variants
from retu.errors import RetuInputError

from loss_inputs import random_inputs

ENTRIES = [(kind, name) for kind, table in REGISTRY.items() for name in table]
GROUPS = {"loss", "policy", "reward", "completion", "eval", "optim", "perf", "fit"}
# Hyperparameters that exercise every optional branch (KL, entropy bonus, dual clip).
EXTRA = {"ppo_clip": dict(clip_ratio_c=3.0, beta_kl=0.01, entropy_coef=0.01),
         "grpo_clip": dict(beta_kl=0.01, entropy_coef=0.01),
         "dapo_clip": dict(beta_kl=0.01, entropy_coef=0.01),
         "pg_unclipped": dict(beta_kl=0.01, entropy_coef=0.01)}


def loss_fn(kind, name, **kwargs):
    """A LossInputs -> LossOutput callable for a term, method or aggregation entry."""
    if kind == "method":
        return build_loss(name, None, **kwargs)
    if kind == "term":
        return build_loss(name, "token_mean", **{**EXTRA.get(name, {}), **kwargs})
    return build_loss("ppo_clip", name, beta_kl=0.01, entropy_coef=0.01)


def check_metrics(metrics):
    for key, value in metrics.items():
        group, _, rest = key.partition("/")
        assert group in GROUPS and rest and key == key.lower(), key
        assert value.dim() == 0 and not value.requires_grad, key


# ---------------------------------------------------------------------------------------------------
# Signatures


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_signature_and_docs(kind, name):
    variant = REGISTRY[kind][name]
    assert variant.fn.__name__ == name  # the key is the function's name (STYLE.md section 7)
    assert variant.status in {"validated", "experimental"} and variant.paper.startswith("https://")
    assert "Reference:" in variant.fn.__doc__ and "Returns:" in variant.fn.__doc__
    params = list(inspect.signature(variant.fn).parameters.values())
    positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    hyper = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    expected_positional = {"advantage": ["rewards", "group_ids"]}.get(kind, ["inp"])
    assert [p.name for p in positional] == expected_positional
    assert all(p.default is not inspect.Parameter.empty for p in hyper), "hyperparameters need defaults"
    if kind == "aggregation":
        assert hyper == []  # normalisers are data (LossInputs.total_*), not hyperparameters
    build(kind, name, **{p.name: p.default for p in hyper})  # the defaults pass validation


# ---------------------------------------------------------------------------------------------------
# Losses: shapes, finiteness, gradient flow, padding


@pytest.mark.parametrize(("kind", "name"), [e for e in ENTRIES if e[0] != "advantage"])
def test_loss_shapes_finite_and_gradients(kind, name, inputs):
    out = loss_fn(kind, name)(inputs)
    assert out.per_token.shape == inputs.mask.shape and out.loss.dim() == 0
    assert torch.isfinite(out.loss) and torch.isfinite(out.per_token).all()
    torch.testing.assert_close(out.per_token.sum(), out.loss)  # per_token is each token's share
    assert torch.equal(out.per_token[~inputs.mask], torch.zeros_like(out.per_token[~inputs.mask]))
    check_metrics(out.metrics)
    grad, grad_entropy = torch.autograd.grad(out.loss, [inputs.logprobs, inputs.entropy], allow_unused=True)
    assert torch.isfinite(grad).all()
    assert grad[inputs.mask].abs().sum() > 0  # gradient reaches the valid tokens
    assert torch.equal(grad[~inputs.mask], torch.zeros_like(grad[~inputs.mask]))  # exactly 0, not NaN
    if grad_entropy is not None:
        assert torch.equal(grad_entropy[~inputs.mask], torch.zeros_like(grad_entropy[~inputs.mask]))


@pytest.mark.parametrize("name", list(REGISTRY["method"]))
@pytest.mark.parametrize("norm", ["lmax", "token_mean"])
def test_methods_without_expert_rows_are_finite(name, norm):
    inp = random_inputs(demo_rows=())
    out = build_loss(name, norm=norm)(inp)
    assert torch.isfinite(out.loss)
    assert out.metrics["policy/expert_token_frac"] == 0
    assert out.metrics.get("loss/sft", torch.tensor(0.0)) == 0  # the expert term is absent, not NaN
    (grad,) = torch.autograd.grad(out.loss, inp.logprobs)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", list(REGISTRY["method"]))
def test_methods_with_only_expert_rows_are_finite(name):
    inp = random_inputs(demo_rows=range(8))
    out = build_loss(name)(inp)
    assert torch.isfinite(out.loss) and torch.isfinite(out.per_token).all()


@pytest.mark.parametrize("name", list(REGISTRY["advantage"]))
def test_advantage_shapes(name):
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    group_ids = torch.tensor([7, 7, 3, 3, 9, 9])
    out = build("advantage", name)(rewards, group_ids)
    assert out.advantages.shape == (6,) and torch.isfinite(out.advantages).all()
    assert not out.advantages.requires_grad  # advantages are constants of the loss
    assert out.advantages[2:4].abs().sum() == 0  # group 3 has equal rewards
    check_metrics(out.metrics)
    torch.testing.assert_close(out.metrics["reward/frac_zero_std"], torch.tensor(1 / 3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------
# Errors name the valid choices


def test_unknown_name_lists_valid_names():
    with pytest.raises(RetuInputError, match="unknown term 'dapo'; valid: ppo_clip, grpo_clip, dapo_clip"):
        build("term", "dapo")
    with pytest.raises(RetuInputError, match="valid: advantage, term, aggregation, method"):
        build("loss", "dapo_clip")
    with pytest.raises(RetuInputError, match="valid: grpo, dapo_d, dapo_dc, luffy, srft, upt"):
        build_algorithm("ppo")


def test_unknown_kwarg_lists_valid_kwargs():
    with pytest.raises(RetuInputError, match=r"unknown kwarg\(s\) eps for term 'dapo_clip'; "
                                             r"valid: eps_low, eps_high, clip_ratio_c, beta_kl, entropy_coef"):
        build("term", "dapo_clip", eps=0.2)
    with pytest.raises(RetuInputError, match="valid: none"):
        build("aggregation", "token_mean", max_len=4)
    with pytest.raises(RetuInputError, match="norm='sum' is not one of 'lmax', 'token_mean'"):
        build_loss("luffy", norm="sum")


def test_term_and_method_need_the_right_aggregation():
    with pytest.raises(RetuInputError, match="give a term an aggregation"):
        build_loss("dapo_clip")
    with pytest.raises(RetuInputError, match="aggregates itself"):
        build_loss("luffy", "token_mean")


def test_bad_hyperparameter_values_and_missing_inputs(inputs):
    with pytest.raises(RetuInputError, match="clip_ratio_c must be > 1"):
        build("term", "ppo_clip", clip_ratio_c=0.5)(inputs)
    no_entropy = types.LossInputs(logprobs=inputs.logprobs, old_logprobs=inputs.old_logprobs,
                                  advantages=inputs.advantages, mask=inputs.mask)
    with pytest.raises(ValueError, match="luffy.*needs LossInputs.entropy"):
        build_loss("luffy")(no_entropy)
    with pytest.raises(ValueError, match="needs LossInputs.ref_logprobs"):
        build("term", "grpo_clip", beta_kl=0.1)(no_entropy)
    with pytest.raises(ValueError, match="total_tokens and total_demo_tokens together"):
        build_loss("upt")(replace(inputs, total_tokens=10.0))


def test_loss_inputs_validates_shapes():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask must be bool"):
        types.LossInputs(logprobs=x, old_logprobs=x, advantages=torch.zeros(2), mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"advantages must have shape \(2,\)"):
        types.LossInputs(logprobs=x, old_logprobs=x, advantages=torch.zeros(3), mask=x.bool())
    with pytest.raises(ValueError, match=r"old_logprobs must have shape \(2, 3\)"):
        types.LossInputs(logprobs=x, old_logprobs=x[:, :2], advantages=torch.zeros(2), mask=x.bool())
    inp = types.LossInputs(logprobs=x, old_logprobs=x, advantages=torch.zeros(2), mask=x.bool())
    assert inp.is_demo.tolist() == [False, False]


# ---------------------------------------------------------------------------------------------------
# Presets and listing


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_presets_build_and_run(name, inputs):
    algo = build_algorithm(name)
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    adv = algo.advantage(rewards.reshape(2, 4)).advantages
    assert adv.shape == (8,)
    out = algo.loss(inputs)
    assert torch.isfinite(out.loss)
    preset = ALGORITHMS[name]
    assert algo.sampling.dynamic_sampling == name.startswith("dapo")
    assert (algo.sampling.demos_per_group == 1) == (name in {"luffy", "srft"})
    assert (preset.agg is None) == (preset.term in REGISTRY["method"])


def test_preset_overrides_reach_the_loss(inputs):
    base = build_algorithm("dapo_dc").loss(inputs).loss
    same = build_loss("dapo_clip", "token_mean")(inputs).loss
    other = build_algorithm("dapo_dc", eps_high=0.5).loss(inputs).loss
    torch.testing.assert_close(base, same)
    assert not torch.isclose(base, other)


def test_list_variants_covers_registry_and_presets():
    rows = list_variants()
    assert {(r.kind, r.name) for r in rows} == set(ENTRIES) | {("algorithm", n) for n in ALGORITHMS}
    assert all(r.status in {"validated", "experimental"} and r.paper for r in rows)


# ---------------------------------------------------------------------------------------------------
# Doctests and size limits of this package


@pytest.mark.parametrize("module", [advantages, aggregation, hybrid, policy, registry, sft, types])
def test_doctests_and_sizes(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    source = inspect.getsource(module)
    assert len(source.splitlines()) < 400
    assert ".item()" not in source
    for _, fn in inspect.getmembers(module, inspect.isfunction):
        if fn.__module__ == module.__name__:
            assert len(inspect.getsource(fn).splitlines()) <= 50, fn.__name__
