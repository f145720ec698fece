"""Each loss equals a slow, obviously-correct loop over tokens (values and gradients).

The references walk every valid token with scalar torch ops and Python `if`s on the values, so
autograd gives their gradients too; they share no code with retu.algos.
"""

import math

import pytest
import torch

from retu.algos.registry import build_loss

from loss_inputs import random_inputs

SEEDS = [0, 1, 2]


def valid_tokens(inp):
    rows, width = inp.mask.shape
    return [(i, t) for i in range(rows) for t in range(width) if inp.mask[i, t]]


def ppo_token(inp, i, t, eps_low, eps_high, clip_c, beta_kl, entropy_coef):
    a = inp.advantages[i]
    ratio = torch.exp(torch.clamp(inp.logprobs[i, t] - inp.old_logprobs[i, t], -20, 20))
    unclipped, clipped = -a * ratio, -a * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    loss = unclipped if unclipped > clipped else clipped
    if clip_c is not None and a < 0 and loss > -a * clip_c:
        loss = -a * clip_c  # constant: no gradient
    d = torch.clamp(inp.ref_logprobs[i, t] - inp.logprobs[i, t], -20, 20)
    k3 = torch.clamp(torch.exp(d) - d - 1, -10, 10)
    return loss + beta_kl * k3 - entropy_coef * inp.entropy[i, t]


def aggregate(inp, losses, agg):
    """losses: {(i, t): scalar}."""
    if agg == "token_mean":
        return sum(losses.values()) / len(losses)
    if agg == "sum_over_lmax":
        return sum(losses.values()) / inp.max_len
    per_row = {}
    for (i, _), value in losses.items():
        per_row.setdefault(i, []).append(value)
    return sum(sum(v) / len(v) for v in per_row.values()) / len(per_row)


def ppo_reference(inp, agg, **kw):
    return aggregate(inp, {(i, t): ppo_token(inp, i, t, **kw) for i, t in valid_tokens(inp)}, agg)


def mean_entropy(inp):
    tokens = valid_tokens(inp)
    return sum(inp.entropy[i, t] for i, t in tokens) / len(tokens)


def luffy_reference(inp, gamma, coef, norm):
    pg = 0.0
    for i, t in valid_tokens(inp):
        if inp.is_demo[i]:
            p = torch.exp(inp.logprobs[i, t])
            pg = pg - inp.advantages[i] * p / (p + gamma)
        else:
            pg = pg - inp.advantages[i] * torch.exp(inp.logprobs[i, t] - inp.old_logprobs[i, t])
    denom = inp.max_len if norm == "lmax" else len(valid_tokens(inp))
    return pg / denom - coef * mean_entropy(inp)


def srft_reference(inp, gamma, coef, norm):
    sft, n_demo, pg = 0.0, 0, 0.0
    for i, t in valid_tokens(inp):
        row = [inp.entropy[i, s].item() for s in range(inp.mask.shape[1]) if inp.mask[i, s]]
        h = sum(row) / len(row)
        logp = inp.logprobs[i, t]
        if inp.is_demo[i]:
            sft, n_demo = sft - 0.5 * math.exp(-h) * logp, n_demo + 1
            p = torch.exp(logp)
            pg = pg - inp.advantages[i] * p / (p + gamma)
        elif inp.rewards[i] == 1.0:
            pg = pg - 0.1 * math.exp(h) * logp
        else:
            pg = pg + logp
    denom = inp.max_len if norm == "lmax" else len(valid_tokens(inp))
    return (sft / n_demo if n_demo else 0.0) + pg / denom - coef * mean_entropy(inp)


def upt_reference(inp, sft_coef, coef, norm):
    sft, n_demo, pg, n_on = 0.0, 0, 0.0, 0
    for i, t in valid_tokens(inp):
        if inp.is_demo[i]:
            sft, n_demo = sft - inp.logprobs[i, t], n_demo + 1
        else:
            ratio = torch.exp(inp.logprobs[i, t] - inp.old_logprobs[i, t])
            pg, n_on = pg - inp.advantages[i] * ratio, n_on + 1
    denom = inp.max_len if norm == "lmax" else n_on
    return sft_coef * sft / n_demo + pg / denom - coef * mean_entropy(inp)


def assert_same_loss_and_grad(inp, got, expected):
    g_got, g_exp = (torch.autograd.grad(x, inp.logprobs)[0] for x in (got, expected))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_got[inp.mask], g_exp[inp.mask], rtol=1e-9, atol=1e-12)


CLIPS = [dict(eps_low=0.2, eps_high=0.28, clip_c=3.0), dict(eps_low=0.1, eps_high=0.3, clip_c=None)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "sum_over_lmax"])
@pytest.mark.parametrize("clip", CLIPS)
def test_ppo_clip_matches_loop(clip, agg, seed):
    inp = random_inputs(seed)
    kw = dict(beta_kl=0.05, entropy_coef=0.01)
    got = build_loss("ppo_clip", agg, eps_low=clip["eps_low"], eps_high=clip["eps_high"],
                     clip_ratio_c=clip["clip_c"], **kw)(inp).loss
    assert_same_loss_and_grad(inp, got, ppo_reference(inp, agg, **clip, **kw))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", ["lmax", "token_mean"])
def test_luffy_matches_loop(norm, seed):
    inp = random_inputs(seed)
    got = build_loss("luffy", gamma=0.2, entropy_coef=0.01, norm=norm)(inp).loss
    assert_same_loss_and_grad(inp, got, luffy_reference(inp, 0.2, 0.01, norm))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", ["lmax", "token_mean"])
def test_srft_matches_loop(norm, seed):
    inp = random_inputs(seed)
    got = build_loss("srft", gamma=0.1, entropy_coef=0.01, norm=norm)(inp).loss
    assert_same_loss_and_grad(inp, got, srft_reference(inp, 0.1, 0.01, norm))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", ["lmax", "token_mean"])
def test_upt_matches_loop(norm, seed):
    inp = random_inputs(seed)
    got = build_loss("upt", sft_coef=0.7, entropy_coef=0.01, norm=norm)(inp).loss
    assert_same_loss_and_grad(inp, got, upt_reference(inp, 0.7, 0.01, norm))
