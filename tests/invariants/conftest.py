"""Random micro-batches for the invariant tests (float64; NaN in every padded position)."""

import torch

from retu.algos.types import LossInputs


def random_inputs(seed, rows=8, width=6, dtype=torch.float64):
    """LossInputs with leaf `logprobs` (requires grad), ratios far enough from 1 to hit the clips.

    Rows 2 and 5 are expert rows; rewards are 0/1 with row 0 positive.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    lengths[0] = width
    mask = torch.arange(width)[None, :] < lengths[:, None]  # [B, T]
    nan = torch.tensor(float("nan"), dtype=dtype)
    logp = -torch.rand(rows, width, generator=g, dtype=dtype) * 3 - 0.01
    old = logp + 0.5 * torch.randn(rows, width, generator=g, dtype=dtype)
    ref = logp + 0.5 * torch.randn(rows, width, generator=g, dtype=dtype)
    is_demo = torch.zeros(rows, dtype=torch.bool)
    is_demo[[2, 5]] = True
    rewards = (torch.rand(rows, generator=g) < 0.5).to(dtype)
    rewards[0] = 1.0
    return LossInputs(
        logprobs=torch.where(mask, logp, nan).requires_grad_(True),
        old_logprobs=torch.where(mask, old, nan),
        advantages=torch.randn(rows, generator=g, dtype=dtype),
        mask=mask,
        is_demo=is_demo,
        ref_logprobs=torch.where(mask, ref, nan),
        rewards=rewards,
        entropy=torch.where(mask, torch.rand(rows, width, generator=g, dtype=dtype) * 2, nan),
        max_len=width + 3,
    )
