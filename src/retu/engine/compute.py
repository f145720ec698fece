"""Compute accounting of an RL run: cumulative tokens and FLOPs (paper App. C, per-sequence lengths).

Generation costs one forward per sequence the engine produced or prefilled, in every generation
round, kept or not; training costs 3 forwards (forward + 2x backward) per trained sequence and
optimizer pass. Attention is counted per sequence (S_i^2), not over a padded batch.

Reference: spec/ALGORITHMS.md section 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retu.flops import ModelShape, forward_flops

TRAIN_PASSES = 3.0  # forward + backward (2x forward) per trained token, paper App. C


def compute_generation_flops(shape: ModelShape, gen_lens: Sequence[int]) -> float:
    """Generation FLOPs: one forward over every produced sequence (paper App. C, per-sequence S_i).

    >>> from retu.flops import ModelShape
    >>> s = ModelShape("toy", 1, 2, 4, 8, 1, 1, 2)
    >>> compute_generation_flops(s, [3])  # dense 144 per token x 3 + attention 4*1*1*2 = 8 x 3^2
    504.0
    """
    return forward_flops(shape, seq_lens=list(gen_lens)) if gen_lens else 0.0


def compute_training_flops(shape: ModelShape, seq_lens: Sequence[int]) -> float:
    """Training FLOPs of one pass over sequences: 3 forwards (forward + 2x backward)."""
    return TRAIN_PASSES * forward_flops(shape, seq_lens=list(seq_lens)) if seq_lens else 0.0


@dataclass
class ComputeLedger:
    """Cumulative training tokens and FLOPs of a run (what every train/eval record carries).

    Attributes:
        tokens: Prompt + completion tokens of every trained row, counted once per optimizer pass.
        flops: Generation FLOPs (every round, kept or not) plus training FLOPs.
    """

    tokens: float = 0.0
    flops: float = 0.0

    def add(self, *, tokens: float = 0.0, flops: float = 0.0) -> None:
        """Add work done."""
        self.tokens += tokens
        self.flops += flops

    def to_dict(self) -> dict[str, float]:
        """JSON-safe state (saved with each checkpoint)."""
        return {"tokens": self.tokens, "flops": self.flops}
