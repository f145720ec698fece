"""The data every loss reads (`LossInputs`) and what losses and advantages return.

Two axes (STYLE.md section 2): a per-token *term* returns a `TermOutput` (the raw loss of each token)
and an *aggregation* returns token weights; `loss = (term.per_token * weights).sum()`. A hybrid
*method* (LUFFY, SRFT, UPT) mixes normalisers inside one loss, so it aggregates itself and returns a
`LossOutput` directly. Both routes end in a `LossOutput` whose `per_token` is each token's share of
`loss` (so `per_token.sum() == loss`), which makes every loss in the registry comparable.

Shape letters: B rows (prompts x G, expert rows included), T padded completion length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

# ---------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, eq=False)
class LossInputs:
    """One micro-batch of rows as every loss in `retu.algos` sees it.

    Required fields come from the policy forward pass and the advantage step; the optional fields
    are extra inputs that only some variants read (a variant that needs one and finds None raises
    ValueError naming the field: a bug in the caller, not bad input). Normaliser fields
    (`total_*`) make a micro-batch's loss a slice of the optimizer mini-batch's loss: set them to
    the counts over the whole mini-batch (all micro-batches, all ranks) and sum the micro-batch
    losses; leave them None to normalise inside each micro-batch as verl does (the "faithful" mode of spec/ALGORITHMS.md section 0).

    Attributes:
        logprobs: [B, T] float. log pi_theta of each sampled token (logits divided by the sampling
            temperature), with gradient.
        old_logprobs: [B, T] float. The same under the parameters that generated the batch,
            detached. Equal to `logprobs.detach()` for a strictly on-policy step (ratio == 1).
        advantages: [B] float. One detached advantage per row, broadcast over its tokens.
        mask: [B, T] bool. True where the token carries loss (response tokens up to and including
            EOS). Everything at a False position is ignored and gets exactly zero gradient.
        is_demo: [B] bool. True for expert (demonstration) rows; None means no expert rows.
        ref_logprobs: [B, T] float or None. Reference-model log-probs, for a KL penalty.
        rewards: [B] float or None. Scalar outcome rewards (SRFT splits rollouts on reward == 1).
        entropy: [B, T] float or None. Entropy of the tempered next-token distribution at each
            position, with gradient (entropy bonuses; SRFT's per-sequence weights detach it).
        max_len: int or None. L_max of the sum / L_max normaliser (the rollout's
            max_response_length, 8192 in the RETU scripts); None means T.
        total_tokens: Valid tokens in the optimizer mini-batch (tensor or number), or None.
        total_demo_tokens: Valid expert tokens in the optimizer mini-batch, or None. Hybrid
            methods need it whenever `total_tokens` is set.
        total_seqs: Rows with at least one valid token in the optimizer mini-batch, or None.
    """

    logprobs: Tensor
    old_logprobs: Tensor
    advantages: Tensor
    mask: Tensor
    is_demo: Tensor | None = None
    ref_logprobs: Tensor | None = None
    rewards: Tensor | None = None
    entropy: Tensor | None = None
    max_len: int | None = None
    total_tokens: Tensor | float | None = None
    total_demo_tokens: Tensor | float | None = None
    total_seqs: Tensor | float | None = None

    def __post_init__(self):
        if self.logprobs.dim() != 2:
            raise ValueError(f"LossInputs.logprobs must be [B, T], got shape {tuple(self.logprobs.shape)}")
        rows, width = self.logprobs.shape
        if self.mask.dtype != torch.bool:
            raise ValueError(f"LossInputs.mask must be bool (True = token counts), got {self.mask.dtype}")
        if self.is_demo is None:
            # Frozen dataclass: the one sanctioned write, filling the documented default.
            object.__setattr__(self, "is_demo", torch.zeros(rows, dtype=torch.bool, device=self.mask.device))
        if self.is_demo.dtype != torch.bool:
            raise ValueError(f"LossInputs.is_demo must be bool, got {self.is_demo.dtype}")
        per_token = {"old_logprobs": self.old_logprobs, "mask": self.mask,
                     "ref_logprobs": self.ref_logprobs, "entropy": self.entropy}
        per_row = {"advantages": self.advantages, "is_demo": self.is_demo, "rewards": self.rewards}
        for name, value in per_token.items():
            if value is not None and tuple(value.shape) != (rows, width):
                raise ValueError(f"LossInputs.{name} must have shape {(rows, width)} like logprobs, "
                                     f"got {tuple(value.shape)}")
        for name, value in per_row.items():
            if value is not None and tuple(value.shape) != (rows,):
                raise ValueError(f"LossInputs.{name} must have shape ({rows},), got {tuple(value.shape)}")
        if self.max_len is not None and self.max_len < 1:
            raise ValueError(f"LossInputs.max_len must be a positive int (L_max), got {self.max_len!r}")


def require(value: Tensor | None, name: str, variant: str) -> Tensor:
    """Return an optional `LossInputs` field, or raise a one-line error naming who needs it."""
    if value is None:
        raise ValueError(f"{variant} needs LossInputs.{name}; set it when building the inputs")
    return value


# ---------------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, eq=False)
class TermOutput:
    """A per-token term before aggregation.

    Attributes:
        per_token: [B, T]. Raw loss of each token; exactly 0 where `mask` is False.
        metrics: Detached scalar tensors named `group/name` (STYLE.md section 4). NaN means "no
            such tokens in this micro-batch"; the logger writes it as null, never as 0.
    """

    per_token: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class LossOutput:
    """A finished loss: the scalar to backpropagate and where it came from.

    Attributes:
        per_token: [B, T]. Each token's share of `loss` (raw term times aggregation weight), so
            `per_token.sum() == loss`; exactly 0 where `mask` is False.
        loss: Scalar tensor to minimise, with gradient.
        metrics: Detached scalar tensors named `group/name`; NaN marks a missing value. A
            `loss/<part>` metric is that part's share of `loss` (shares add up over micro-batches
            and processes); every other metric is a mean.
    """

    per_token: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class AdvantageOutput:
    """Advantages for one batch of rows.

    Attributes:
        advantages: [B] float, detached.
        metrics: Detached scalars, e.g. `reward/frac_zero_std` (share of groups whose rewards are
            all equal, so their advantages are 0) and `reward/frac_singleton` (groups of one row).
    """

    advantages: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
