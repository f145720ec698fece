"""Supervised fine-tuning term: negative log-likelihood of the response tokens.

    l_t = -log pi_theta(y_t | x, y_<t)   for every response token, EOS included

Aggregate it with `token_mean` (the clean global token mean) or `seq_mean_token_mean` (what verl's
SFT trainer amounts to with one sequence per micro-batch). Prompt tokens never carry loss: the
caller's `mask` covers response tokens only.

Reference: spec/ALGORITHMS.md section 2 (verl `fsdp_sft_trainer`).
"""

from __future__ import annotations

from retu.algos.policy import apply_mask, compute_metric_mean
from retu.algos.types import LossInputs, TermOutput


def sft_nll(inp: LossInputs) -> TermOutput:
    """Per-token NLL of the given tokens (advantages and old_logprobs are ignored).

    Args:
        inp: Reads `logprobs` [B, T] and `mask` [B, T].

    Returns:
        TermOutput with per_token [B, T] = -logprobs on valid tokens, and policy/nll (its token mean).

    Reference: spec/ALGORITHMS.md section 2.
    Differs from paper:
        - None for the loss. verl normalises per micro-batch; pass `total_tokens` for a global mean.

    >>> import torch
    >>> inp = LossInputs(logprobs=torch.tensor([[-1.0, -3.0]]), old_logprobs=torch.zeros(1, 2),
    ...                  advantages=torch.zeros(1), mask=torch.tensor([[True, False]]))
    >>> sft_nll(inp).per_token
    tensor([[1., 0.]])
    """
    per_token = apply_mask(-inp.logprobs, inp.mask)  # [B, T]; +0 (not -0) on padding
    return TermOutput(per_token=per_token, metrics={"policy/nll": compute_metric_mean(per_token, inp.mask)})
