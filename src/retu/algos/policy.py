"""Per-token policy-gradient terms: PPO clipped surrogate (GRPO, DAPO), unclipped PG, KL and entropy.

Each registered term is `fn(inp: LossInputs, *, hyperparameters) -> TermOutput` and returns the raw
loss of every token; an aggregation from `retu.algos.aggregation` turns it into a scalar.

    ratio_t  = exp(clamp(logp_t - logp_old_t, -20, 20))
    ppo_clip l_t = max(-A ratio_t, -A clip(ratio_t, 1 - eps_low, 1 + eps_high));
             with dual clip c: l_t = min(l_t, -A c) where A < 0
    pg_unclipped l_t = -A ratio_t
    optional  + beta_kl * k3_t - entropy_coef * H_t   (aggregated with the term, as verl does)

Reference: PPO https://arxiv.org/abs/1707.06347; dual clip https://arxiv.org/abs/1912.09729;
DAPO https://arxiv.org/abs/2503.14476; verl `compute_policy_loss_vanilla`; spec sections 3 and 5.
"""

from __future__ import annotations

import torch
from torch import Tensor

from retu.algos.types import LossInputs, TermOutput, require
from retu.errors import RetuInputError

LOG_RATIO_CLAMP = 20.0  # verl clamps logp - logp_old before exp so one bad token cannot overflow
KL_CLAMP = 10.0  # verl's k3 ("low_var_kl") clamp

# ---------------------------------------------------------------------------------------------------
# Helpers shared with the hybrid methods


def apply_mask(x: Tensor, mask: Tensor) -> Tensor:
    """x where mask is True, 0 elsewhere; applied to inputs *before* any exp so padding garbage
    (even inf) can neither leak into the loss nor give a NaN gradient."""
    return torch.where(mask, x, torch.zeros_like(x))


def compute_metric_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Detached mean of x over mask; NaN when the mask is empty (missing, logged as null)."""
    x = x.detach()
    return apply_mask(x, mask).sum() / mask.sum().to(x.dtype)


def compute_ratio(inp: LossInputs, mask: Tensor) -> Tensor:
    """Importance ratio pi_theta / pi_old per token, 1 outside `mask`.

    Args:
        inp: Reads `logprobs`, `old_logprobs`.
        mask: [B, T] bool, the tokens to compute it for.

    Returns:
        [B, T] ratio with gradient through `logprobs`.
    """
    log_ratio = apply_mask(inp.logprobs - inp.old_logprobs, mask)  # [B, T]
    return log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()


def compute_kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(pi_theta || pi_ref) per token, with verl's clamps.

    k3 = exp(d) - d - 1, d = clamp(ref_logprobs - logprobs, -20, 20), result clamped to [-10, 10].

    Args:
        logprobs: [...] log pi_theta, with gradient.
        ref_logprobs: [...] log pi_ref, same shape.

    Returns:
        [...] k3 per token (>= 0).

    Reference: http://joschu.net/blog/kl-approx.html; verl `kl_penalty(..., "low_var_kl")`.

    >>> compute_kl_k3(torch.tensor([0.0, -30.0]), torch.tensor([0.0, -0.5]))
    tensor([ 0., 10.])
    """
    d = (ref_logprobs - logprobs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (d.exp() - d - 1).clamp(-KL_CLAMP, KL_CLAMP)


def _add_penalties(per_token: Tensor, inp: LossInputs, beta_kl: float, entropy_coef: float,
                   variant: str) -> tuple[Tensor, dict[str, Tensor]]:
    """Add beta_kl * k3 and subtract entropy_coef * H per token; report both as metrics."""
    metrics: dict[str, Tensor] = {}
    if beta_kl != 0.0:
        ref = require(inp.ref_logprobs, "ref_logprobs", f"{variant}(beta_kl={beta_kl})")
        kl = compute_kl_k3(apply_mask(inp.logprobs, inp.mask), apply_mask(ref, inp.mask))  # [B, T]
        per_token = per_token + beta_kl * kl
        metrics["policy/kl_ref"] = compute_metric_mean(kl, inp.mask)
    if entropy_coef != 0.0:
        entropy = apply_mask(require(inp.entropy, "entropy", f"{variant}(entropy_coef={entropy_coef})"), inp.mask)
        per_token = per_token - entropy_coef * entropy
        metrics["policy/entropy"] = compute_metric_mean(entropy, inp.mask)
    return apply_mask(per_token, inp.mask), metrics


# ---------------------------------------------------------------------------------------------------
# Registered terms


def ppo_clip(inp: LossInputs, *, eps_low: float = 0.2, eps_high: float = 0.2,
             clip_ratio_c: float | None = None, beta_kl: float = 0.0, entropy_coef: float = 0.0) -> TermOutput:
    """PPO clipped surrogate with asymmetric clip range and optional dual clip.

    Gradient w.r.t. logp_t: -A ratio_t where the unclipped branch is active, else 0 (A > 0 is clipped
    iff ratio > 1 + eps_high; A < 0 iff ratio < 1 - eps_low or, with dual clip, ratio > c).

    Args:
        inp: Reads `logprobs`, `old_logprobs`, `advantages`, `mask` (+ `ref_logprobs`, `entropy`).
        eps_low: Lower clip epsilon (ratio floor 1 - eps_low).
        eps_high: Upper clip epsilon (ratio ceiling 1 + eps_high).
        clip_ratio_c: Dual-clip constant c > 1 capping the loss of A < 0 tokens at -A c; None = off.
        beta_kl: Coefficient of the k3 KL to `ref_logprobs`; 0 = no reference model.
        entropy_coef: Coefficient of the entropy bonus (subtracted per token).

    Returns:
        TermOutput with per_token [B, T] and policy/clip_frac_{low,high,dual}, policy/ratio_mean,
        policy/approx_kl (mean of logp_old - logp).

    Reference: https://arxiv.org/abs/1707.06347; dual clip https://arxiv.org/abs/1912.09729.
    Differs from paper:
        - logp - logp_old is clamped to [-20, 20] before exp (verl), zeroing the gradient beyond.
    """
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise RetuInputError(f"clip_ratio_c must be > 1 (dual clip) or None, got {clip_ratio_c!r}")
    mask = inp.mask
    ratio = compute_ratio(inp, mask)  # [B, T]
    adv = inp.advantages[:, None]  # [B, 1]
    unclipped = -adv * ratio  # [B, T]
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)  # [B, T]
    # Inside the clip range both branches are equal and torch.maximum splits the gradient half-half,
    # which sums back to the full -A ratio; outside, only the pessimistic branch carries gradient.
    per_token = torch.maximum(unclipped, clipped)  # [B, T]
    dual = torch.zeros_like(mask)
    if clip_ratio_c is not None:
        capped = torch.minimum(per_token, -adv * clip_ratio_c)  # caps A < 0 tokens whose ratio exploded
        per_token = torch.where(adv < 0, capped, per_token)
        dual = (adv < 0) & (ratio > clip_ratio_c)
    per_token, metrics = _add_penalties(per_token, inp, beta_kl, entropy_coef, "ppo_clip")
    metrics.update({
        "policy/clip_frac_high": compute_metric_mean(((adv > 0) & (ratio > 1.0 + eps_high)).to(ratio.dtype), mask),
        "policy/clip_frac_low": compute_metric_mean(((adv < 0) & (ratio < 1.0 - eps_low)).to(ratio.dtype), mask),
        "policy/clip_frac_dual": compute_metric_mean(dual.to(ratio.dtype), mask),
        "policy/ratio_mean": compute_metric_mean(ratio, mask),
        "policy/approx_kl": compute_metric_mean(apply_mask(inp.old_logprobs - inp.logprobs, mask), mask),
    })
    return TermOutput(per_token=per_token, metrics=metrics)


def grpo_clip(inp: LossInputs, *, eps_low: float = 0.2, eps_high: float = 0.2,
              beta_kl: float = 0.0, entropy_coef: float = 0.0) -> TermOutput:
    """GRPO's symmetric PPO clip (eps 0.2, no dual clip); also DAPO_d's loss.

    Args:
        inp: See `ppo_clip`.
        eps_low: Lower clip epsilon.
        eps_high: Upper clip epsilon.
        beta_kl: k3 KL coefficient (verl GRPO examples 0.001; RETU runs 0).
        entropy_coef: Entropy bonus coefficient.

    Returns:
        TermOutput, as `ppo_clip`.

    Reference: https://arxiv.org/abs/2402.03300; spec section 3.
    Differs from paper:
        - KL is off by default (beta_kl = 0, as in all RETU runs); the paper uses beta 0.04.
    """
    return ppo_clip(inp, eps_low=eps_low, eps_high=eps_high, clip_ratio_c=None,
                    beta_kl=beta_kl, entropy_coef=entropy_coef)


def dapo_clip(inp: LossInputs, *, eps_low: float = 0.2, eps_high: float = 0.28,
              clip_ratio_c: float | None = 10.0, beta_kl: float = 0.0, entropy_coef: float = 0.0) -> TermOutput:
    """DAPO's clip-higher (eps_low 0.2, eps_high 0.28) with RETU's dual clip c = 10.

    Args:
        inp: See `ppo_clip`.
        eps_low: Lower clip epsilon.
        eps_high: Upper clip epsilon ("clip-higher").
        clip_ratio_c: Dual-clip constant (RETU scripts: 10); None = off.
        beta_kl: k3 KL coefficient (DAPO: 0).
        entropy_coef: Entropy bonus coefficient (RETU: 0).

    Returns:
        TermOutput, as `ppo_clip`.

    Reference: https://arxiv.org/abs/2503.14476 (Clip-Higher); spec section 5.
    Differs from paper:
        - Dual clip c = 10 on by default, as RETU's DAPO_dc scripts set `clip_ratio_c`.
        - With one optimizer step per rollout batch (RETU) ratio == 1 and no clip ever activates.
    """
    return ppo_clip(inp, eps_low=eps_low, eps_high=eps_high, clip_ratio_c=clip_ratio_c,
                    beta_kl=beta_kl, entropy_coef=entropy_coef)


def pg_unclipped(inp: LossInputs, *, beta_kl: float = 0.0, entropy_coef: float = 0.0) -> TermOutput:
    """Unclipped importance-weighted policy gradient: l_t = -A ratio_t.

    Args:
        inp: See `ppo_clip`.
        beta_kl: k3 KL coefficient.
        entropy_coef: Entropy bonus coefficient.

    Returns:
        TermOutput with per_token [B, T], policy/ratio_mean and policy/approx_kl.

    Reference: LUFFY/UPT on-policy term (`loss_remove_clip=True`), spec sections 6 and 8.
    Differs from paper:
        - logp - logp_old clamped to [-20, 20] before exp (numerical guard only).
    """
    ratio = compute_ratio(inp, inp.mask)  # [B, T]
    per_token = -inp.advantages[:, None] * ratio  # [B, T]
    per_token, metrics = _add_penalties(per_token, inp, beta_kl, entropy_coef, "pg_unclipped")
    metrics["policy/ratio_mean"] = compute_metric_mean(ratio, inp.mask)
    metrics["policy/approx_kl"] = compute_metric_mean(apply_mask(inp.old_logprobs - inp.logprobs, inp.mask), inp.mask)
    return TermOutput(per_token=per_token, metrics=metrics)
