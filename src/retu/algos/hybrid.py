"""Synchronized SFT-RL methods: LUFFY, SRFT and UPT, as whole losses.

These methods add terms that are normalised differently (SRFT: a token mean over expert tokens plus
sum / L_max over everything; UPT: a token mean over SFT rows plus sum / L_max over RL rows), so a
single per-token term plus one aggregation cannot express them. Each is therefore registered as a
*method*: `fn(inp, *, hyperparameters, norm) -> LossOutput`, composing the same weight helpers the
aggregations use. Rows with `inp.is_demo` are expert trajectories; the others are on-policy rollouts.

`norm` picks the normaliser of the policy terms:
    "lmax"        sum / L_max, what the authors' code runs (default; L_max = `inp.max_len`)
    "token_mean"  a clean token mean (LUFFY: over all tokens, the paper's 1/Z; SRFT: the same for
                  terms 2-4; UPT: the RL term over on-policy tokens)
The SFT-like terms (SRFT term 1, UPT SFT rows) are token means over expert tokens in both modes,
and the entropy bonus is a token mean over all valid tokens, as in the scripts.

A micro-batch without expert tokens gets exactly 0 from the expert terms (never NaN); the metrics
that average over expert tokens are NaN there, which the logger writes as null.

Loss components are logged as loss/sft, loss/pg and loss/entropy_bonus (they sum to the loss).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from retu.algos.aggregation import compute_lmax_weights, compute_token_mean_weights
from retu.algos.policy import apply_mask, compute_metric_mean, compute_ratio
from retu.algos.types import LossInputs, LossOutput, require
from retu.errors import RetuInputError

Norm = Literal["lmax", "token_mean"]

# ---------------------------------------------------------------------------------------------------
# Shared pieces


def compute_shaped_prob(logprobs: Tensor, gamma: float) -> Tensor:
    """LUFFY's policy shaping f(p) = p / (p + gamma), p = exp(logprobs), gradient through p.

    Args:
        logprobs: [...] log pi_theta of expert tokens.
        gamma: Shaping constant (LUFFY: 0.1).

    Returns:
        [...] f(p) in (0, 1); d f / d logp = gamma p / (p + gamma)^2 peaks at p = gamma.

    >>> compute_shaped_prob(torch.log(torch.tensor([0.9, 0.1])), 0.1)
    tensor([0.9000, 0.5000])
    """
    p = logprobs.exp()
    return p / (p + gamma)


def compute_seq_entropy(entropy: Tensor, mask: Tensor) -> Tensor:
    """Detached mean token entropy of each row over its valid tokens: H_i [B] (0 for empty rows)."""
    weights = mask.to(entropy.dtype)  # [B, T]
    return apply_mask(entropy.detach(), mask).sum(-1) / weights.sum(-1).clamp_min(1)  # [B]


def compute_srft_weights(seq_entropy: Tensor, *, sft_weight_scale: float = 0.5,
                         rl_weight_scale: float = 0.1) -> tuple[Tensor, Tensor]:
    """SRFT's entropy-aware weights w_SFT = 0.5 sg(exp(-H)) and w_RL = 0.1 sg(exp(+H)).

    Args:
        seq_entropy: [B] per-sequence mean token entropy H_i.
        sft_weight_scale: Scale of w_SFT.
        rl_weight_scale: Scale of w_RL.

    Returns:
        (w_sft [B], w_rl [B]), detached.

    >>> compute_srft_weights(torch.tensor([0.0, 1.0]))
    (tensor([0.5000, 0.1839]), tensor([0.1000, 0.2718]))
    """
    h = seq_entropy.detach()
    return sft_weight_scale * torch.exp(-h), rl_weight_scale * torch.exp(h)


def _lmax(mask: Tensor, total: Tensor | float | None, inp: LossInputs) -> Tensor:
    return compute_lmax_weights(mask, inp.max_len, inp.logprobs.dtype)


def _token_mean(mask: Tensor, total: Tensor | float | None, inp: LossInputs) -> Tensor:
    return compute_token_mean_weights(mask, total, inp.logprobs.dtype)


_NORMS = {"lmax": _lmax, "token_mean": _token_mean}


def _policy_weights(norm: str, mask: Tensor, total: Tensor | float | None, inp: LossInputs) -> Tensor:
    """Weights [B, T] of the policy terms under normaliser `norm` over `mask`."""
    if norm not in _NORMS:
        raise RetuInputError(f"unknown norm {norm!r}; valid: {', '.join(_NORMS)}")
    return _NORMS[norm](mask, total, inp)


def _split(inp: LossInputs, variant: str) -> tuple[Tensor, Tensor]:
    """Expert-token and on-policy-token masks [B, T]; checks the global normalisers come together."""
    if (inp.total_tokens is None) != (inp.total_demo_tokens is None):
        raise ValueError(f"{variant}: set LossInputs.total_tokens and total_demo_tokens together "
                             "(global normalisers) or neither (per micro-batch)")
    demo = inp.is_demo[:, None] & inp.mask  # [B, T]
    return demo, inp.mask & ~demo


def _entropy_bonus(inp: LossInputs, coef: float, variant: str) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token share of -coef * token-mean entropy over all valid tokens, and its metric."""
    if coef == 0.0:
        return torch.zeros_like(inp.logprobs), {}
    entropy = apply_mask(require(inp.entropy, "entropy", f"{variant}(entropy_coef={coef})"), inp.mask)
    share = -coef * entropy * compute_token_mean_weights(inp.mask, inp.total_tokens, entropy.dtype)
    return share, {"policy/entropy": compute_metric_mean(entropy, inp.mask)}


def _finish(parts: dict[str, Tensor], metrics: dict[str, Tensor], inp: LossInputs, demo: Tensor) -> LossOutput:
    """Sum per-token shares into a LossOutput and log each part's value as loss/<part>."""
    per_token = apply_mask(sum(parts.values()), inp.mask)  # [B, T]
    metrics.update({f"loss/{name}": share.detach().sum() for name, share in parts.items()})
    metrics["policy/expert_token_frac"] = compute_metric_mean(demo.to(per_token.dtype), inp.mask)
    return LossOutput(per_token=per_token, loss=per_token.sum(), metrics=metrics)


# ---------------------------------------------------------------------------------------------------
# Registered methods


def luffy(inp: LossInputs, *, gamma: float = 0.1, entropy_coef: float = 0.001, norm: Norm = "lmax") -> LossOutput:
    """LUFFY: unclipped on-policy PG plus policy-shaped off-policy PG on expert tokens.

    Expert tokens: l_t = -A f(p_t), f(p) = p / (p + gamma), behaviour probability taken as 1.
    On-policy tokens: l_t = -A ratio_t (no clip). Loss = sum_t l_t / L_max - entropy_coef * mean H.

    Args:
        inp: Reads `logprobs`, `old_logprobs`, `advantages` (r - group mean, expert included),
            `mask`, `is_demo`, `max_len`, `entropy` (when entropy_coef != 0).
        gamma: Shaping constant gamma.
        entropy_coef: Entropy bonus coefficient (LUFFY script: 0.001).
        norm: "lmax" (code: sum / L_max) or "token_mean" (paper: sum / Z over all valid tokens).

    Returns:
        LossOutput; metrics loss/pg, loss/entropy_bonus, policy/luffy_shaped_mean,
        policy/ratio_mean, policy/expert_token_frac, policy/entropy.

    Reference: https://arxiv.org/abs/2504.14945; spec section 6 (vector c_luffy).
    Differs from paper:
        - sum / L_max instead of 1/Z by default (`loss_remove_token_mean=True` in the script).
        - Advantages without std scaling (`grpo_use_std=False`); entropy bonus 0.001 kept.
        - On-policy log-ratio clamped to [-20, 20] before exp (numerical guard only).
    """
    demo, on_policy = _split(inp, "luffy")
    adv = inp.advantages[:, None]  # [B, 1]
    shaped = compute_shaped_prob(apply_mask(inp.logprobs, demo), gamma)  # [B, T]; 1/(1+gamma) off demo
    ratio = compute_ratio(inp, on_policy)  # [B, T]; 1 off on-policy tokens
    raw = torch.where(demo, -adv * shaped, -adv * ratio)  # [B, T]
    pg = apply_mask(raw, inp.mask) * _policy_weights(norm, inp.mask, inp.total_tokens, inp)
    bonus, metrics = _entropy_bonus(inp, entropy_coef, "luffy")
    metrics["policy/luffy_shaped_mean"] = compute_metric_mean(shaped, demo)
    metrics["policy/ratio_mean"] = compute_metric_mean(ratio, on_policy)
    return _finish({"pg": pg, "entropy_bonus": bonus}, metrics, inp, demo)


def srft(inp: LossInputs, *, gamma: float = 0.1, sft_weight_scale: float = 0.5, rl_weight_scale: float = 0.1,
         positive_reward: float = 1.0, entropy_coef: float = 0.001, norm: Norm = "lmax") -> LossOutput:
    """SRFT: entropy-weighted SFT + LUFFY off-policy term + weighted positive / plain negative NLL.

    1. Expert tokens, token mean over expert tokens: -w_SFT(H_i) logp_t, w_SFT = 0.5 exp(-H_i).
    2. Expert tokens: -A f(p_t) (LUFFY's shaped term).
    3. Rollouts with reward == positive_reward: -w_RL(H_i) logp_t, w_RL = 0.1 exp(+H_i).
    4. Other rollouts: +logp_t.
    Terms 2-4 share one normaliser (sum / L_max); H_i is row i's mean token entropy, detached.

    Args:
        inp: Reads `logprobs`, `advantages`, `mask`, `is_demo`, `rewards`, `entropy`, `max_len`.
        gamma: Shaping constant of term 2.
        sft_weight_scale: Scale of w_SFT (0.5).
        rl_weight_scale: Scale of w_RL (0.1).
        positive_reward: Reward that marks a positive rollout (exact comparison).
        entropy_coef: Entropy bonus coefficient (UPT repo's train_srft.sh: 0.001).
        norm: "lmax" (code) or "token_mean" (terms 2-4 over all valid tokens).

    Returns:
        LossOutput; metrics loss/sft, loss/pg, loss/entropy_bonus, policy/srft_w_sft_mean,
        policy/srft_w_rl_mean, policy/srft_pos_frac, policy/expert_token_frac, policy/entropy.

    Reference: https://arxiv.org/abs/2506.19767; spec section 7 (vector d_srft).
    Differs from paper:
        - Weights 0.5 and 0.1 with exp(+H) for w_RL, as the code (UPT repo `srft`) runs.
        - Terms 3/4 use no advantage, ratio or clip; terms 2-4 use sum / L_max (code).
    """
    demo, on_policy = _split(inp, "srft")
    entropy = require(inp.entropy, "entropy", "srft")
    w_sft, w_rl = compute_srft_weights(compute_seq_entropy(entropy, inp.mask), sft_weight_scale=sft_weight_scale,
                                       rl_weight_scale=rl_weight_scale)  # [B], [B]
    positive = (require(inp.rewards, "rewards", "srft") == positive_reward)[:, None] & on_policy  # [B, T]
    logp = apply_mask(inp.logprobs, inp.mask)  # [B, T]
    sft_weights = compute_token_mean_weights(demo, inp.total_demo_tokens, logp.dtype)  # [B, T]
    sft = apply_mask(-w_sft[:, None] * logp, demo) * sft_weights
    shaped = compute_shaped_prob(apply_mask(logp, demo), gamma)  # [B, T]
    on_raw = torch.where(positive, -w_rl[:, None] * logp, logp)  # [B, T]
    raw = torch.where(demo, -inp.advantages[:, None] * shaped, on_raw)  # [B, T]
    pg = apply_mask(raw, inp.mask) * _policy_weights(norm, inp.mask, inp.total_tokens, inp)
    bonus, metrics = _entropy_bonus(inp, entropy_coef, "srft")
    demo_rows, pos_rows = inp.is_demo, positive.any(-1)  # [B], [B]
    metrics["policy/srft_w_sft_mean"] = compute_metric_mean(w_sft, demo_rows)
    metrics["policy/srft_w_rl_mean"] = compute_metric_mean(w_rl, pos_rows)
    metrics["policy/srft_pos_frac"] = compute_metric_mean(pos_rows.to(logp.dtype), on_policy.any(-1))
    metrics["policy/luffy_shaped_mean"] = compute_metric_mean(shaped, demo)
    return _finish({"sft": sft, "pg": pg, "entropy_bonus": bonus}, metrics, inp, demo)


def upt(inp: LossInputs, *, sft_coef: float = 1.0, entropy_coef: float = 0.001, norm: Norm = "lmax") -> LossOutput:
    """UPT ("switch" hybrid): SFT on expert rows plus unclipped PG on rollout rows.

    Rows come from `upt_route`: a prompt with k <= gate correct rollouts contributes one expert row
    (is_demo), otherwise its G rollouts. Loss = sft_coef * token-mean NLL over expert tokens
    + sum over on-policy tokens of -A ratio_t / L_max - entropy_coef * token-mean H (all rows).

    Args:
        inp: Reads `logprobs`, `old_logprobs`, `advantages` (r - mean over the G rollouts), `mask`,
            `is_demo`, `max_len`, `entropy` (when entropy_coef != 0).
        sft_coef: Coefficient of the SFT rows' loss (`sft_loss_coef`).
        entropy_coef: Entropy bonus coefficient (script: 0.001).
        norm: "lmax" (code) or "token_mean" (RL term over on-policy tokens).

    Returns:
        LossOutput; metrics loss/sft, loss/pg, loss/entropy_bonus, policy/upt_sft_frac (share of
        expert rows), policy/ratio_mean, policy/expert_token_frac, policy/entropy.

    Reference: https://arxiv.org/abs/2509.04419; spec section 8 (vector e_upt_gate).
    Differs from paper:
        - RL rows use sum / L_max and no clip (`loss_remove_clip=True`), as the scripts run.
        - The Qwen script's skip-update-if-grad-norm > 80 belongs to the trainer, not this loss.
    """
    demo, on_policy = _split(inp, "upt")
    sft_weights = compute_token_mean_weights(demo, inp.total_demo_tokens, inp.logprobs.dtype)  # [B, T]
    sft = sft_coef * apply_mask(-inp.logprobs, demo) * sft_weights
    ratio = compute_ratio(inp, on_policy)  # [B, T]
    total_on = None if inp.total_tokens is None else inp.total_tokens - inp.total_demo_tokens
    pg_weights = _policy_weights(norm, on_policy, total_on, inp)  # [B, T]
    pg = apply_mask(-inp.advantages[:, None] * ratio, on_policy) * pg_weights
    bonus, metrics = _entropy_bonus(inp, entropy_coef, "upt")
    metrics["policy/upt_sft_frac"] = inp.is_demo.to(ratio.dtype).mean().detach()
    metrics["policy/ratio_mean"] = compute_metric_mean(ratio, on_policy)
    return _finish({"sft": sft, "pg": pg, "entropy_bonus": bonus}, metrics, inp, demo)
