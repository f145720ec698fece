"""Aggregations: how per-token losses become one scalar, written as token weights.

An aggregation returns weights w [B, T] (zero where `mask` is False) and the loss is
sum_{i,t} w[i,t] * l[i,t]. Writing it as weights keeps the two axes of STYLE.md section 2 apart
(term x aggregation), gives each token's share of the loss for free, and lets hybrid methods reuse
the same normalisers on sub-masks (expert tokens, on-policy tokens).

Modes (spec/ALGORITHMS.md section 0):
    token_mean           w = mask / N            N = valid tokens (DAPO token-level loss)
    seq_mean_token_mean  w = mask / (n_i * S)    n_i = valid tokens of row i, S = rows (GRPO paper)
    sum_over_lmax        w = mask / L_max        constant normaliser (Dr. GRPO, LUFFY, UPT, SRFT)

Gradient accumulation: with N (`LossInputs.total_tokens`) or S (`total_seqs`) counted over the whole
optimizer mini-batch, the micro-batch losses *sum* to the mini-batch loss, so any split gives the
same gradient. sum_over_lmax needs no count: it is invariant by construction. (Under DDP gradient
averaging, multiply by the world size or let the trainer sum across ranks.)

Reference: verl `agg_loss` (loss_agg_mode token-mean / seq-mean-token-mean / seq-mean-token-sum-norm).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from retu.algos.types import LossInputs, LossOutput, TermOutput

# ---------------------------------------------------------------------------------------------------
# Weight helpers (also used by the hybrid methods on sub-masks)


def _as_count(total: Tensor | float | None, fallback: Tensor, like: Tensor) -> Tensor:
    """A positive normaliser: `total` if given, else `fallback`; at least 1 so empty gives 0, not NaN."""
    count = fallback if total is None else torch.as_tensor(total)
    return count.to(dtype=like.dtype, device=like.device).clamp_min(1)


def compute_token_mean_weights(mask: Tensor, total: Tensor | float | None, dtype: torch.dtype) -> Tensor:
    """Weights of a token mean: mask / N.

    Args:
        mask: [B, T] bool, the tokens that count.
        total: Number of valid tokens N over the optimizer mini-batch, or None for mask.sum().
        dtype: Float dtype of the weights.

    Returns:
        [B, T] weights; all 0 when the mask is empty (the term is absent, never NaN).

    >>> m = torch.tensor([[True, True, False], [True, False, False]])
    >>> compute_token_mean_weights(m, None, torch.float64)
    tensor([[0.3333, 0.3333, 0.0000],
            [0.3333, 0.0000, 0.0000]], dtype=torch.float64)
    """
    weights = mask.to(dtype)  # [B, T]
    return weights / _as_count(total, mask.sum(), weights)


def compute_seq_mean_weights(mask: Tensor, total_seqs: Tensor | float | None, dtype: torch.dtype) -> Tensor:
    """Weights of a mean over rows of each row's token mean: mask / (n_i * S).

    Rows without a valid token are not sequences (padding rows): they get weight 0 and do not
    count in S.

    Args:
        mask: [B, T] bool.
        total_seqs: Number of rows S over the optimizer mini-batch, or None for this batch's rows.
        dtype: Float dtype of the weights.

    Returns:
        [B, T] weights.
    """
    weights = mask.to(dtype)  # [B, T]
    row_tokens = weights.sum(-1, keepdim=True)  # [B, 1]
    num_seqs = (row_tokens > 0).sum()  # rows that hold a sequence
    return weights / row_tokens.clamp_min(1) / _as_count(total_seqs, num_seqs, weights)


def compute_lmax_weights(mask: Tensor, max_len: int | None, dtype: torch.dtype) -> Tensor:
    """Weights of the constant normaliser: mask / L_max (not divided by the number of rows).

    Args:
        mask: [B, T] bool.
        max_len: L_max, or None for the padded width T.
        dtype: Float dtype of the weights.

    Returns:
        [B, T] weights.

    >>> compute_lmax_weights(torch.tensor([[True, False]]), 4, torch.float64)
    tensor([[0.2500, 0.0000]], dtype=torch.float64)
    """
    return mask.to(dtype) / (mask.shape[-1] if max_len is None else max_len)


# ---------------------------------------------------------------------------------------------------
# Registered aggregations: fn(inp) -> weights [B, T]


def token_mean(inp: LossInputs) -> Tensor:
    """Token-level mean over all valid tokens (global with `inp.total_tokens`).

    Args:
        inp: Reads `mask`, `total_tokens`.

    Returns:
        [B, T] weights mask / N.

    Reference: DAPO, https://arxiv.org/abs/2503.14476 (Token-Level Policy Gradient Loss).
    """
    return compute_token_mean_weights(inp.mask, inp.total_tokens, inp.logprobs.dtype)


def seq_mean_token_mean(inp: LossInputs) -> Tensor:
    """Mean over sequences of each sequence's token mean (global with `inp.total_seqs`).

    Args:
        inp: Reads `mask`, `total_seqs`.

    Returns:
        [B, T] weights mask / (n_i * S).

    Reference: GRPO (DeepSeekMath), https://arxiv.org/abs/2402.03300 (objective: 1/G sum_i 1/|o_i| sum_t).
    Differs from paper:
        - Rows with no valid token are skipped instead of dividing 0 by 0.
    """
    return compute_seq_mean_weights(inp.mask, inp.total_seqs, inp.logprobs.dtype)


def sum_over_lmax(inp: LossInputs) -> Tensor:
    """Sum over valid tokens divided by the constant L_max (`inp.max_len`, default T).

    Args:
        inp: Reads `mask`, `max_len`.

    Returns:
        [B, T] weights mask / L_max.

    Reference: Dr. GRPO, https://arxiv.org/abs/2503.20783; LUFFY/UPT flag `loss_remove_token_mean`.
    Differs from paper:
        - Not divided by the number of sequences (verl `seq-mean-token-sum-norm` as the LUFFY, SRFT
          and UPT scripts run it); the constant only rescales the gradient.
    """
    return compute_lmax_weights(inp.mask, inp.max_len, inp.logprobs.dtype)


# ---------------------------------------------------------------------------------------------------
# Composition


def compose_loss(
    inp: LossInputs,
    *,
    term: Callable[[LossInputs], TermOutput],
    agg: Callable[[LossInputs], Tensor],
) -> LossOutput:
    """Apply a per-token term and an aggregation: loss = sum(term.per_token * agg(inp)).

    Args:
        inp: The micro-batch.
        term: A registered term with its hyperparameters bound.
        agg: A registered aggregation.

    Returns:
        LossOutput whose per_token is each token's share of the loss.
    """
    out = term(inp)
    per_token = out.per_token * agg(inp)  # [B, T] share of the loss
    return LossOutput(per_token=per_token, loss=per_token.sum(), metrics=out.metrics)
