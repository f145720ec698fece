"""Random micro-batches for the loss tests (float64, NaN in every padded position), shared by
tests/unit/algos and tests/invariants."""

import torch

from retu.algos.types import LossInputs


def random_inputs(seed=0, rows=8, width=6, demo_rows=(3, 7), dtype=torch.float64):
    """LossInputs with leaf `logprobs` and `entropy` requiring grad.

    Padded positions hold NaN in every per-token input, so any loss that touches padding before
    masking fails the finiteness checks. Row 1 has a single valid token; rewards are 0/1 with at least
    one positive on-policy row.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    lengths[0], lengths[1] = width, 1
    mask = torch.arange(width)[None, :] < lengths[:, None]  # [B, T]
    nan = torch.tensor(float("nan"), dtype=dtype)
    logp = -torch.rand(rows, width, generator=g, dtype=dtype) * 3 - 0.01
    old = logp + 0.4 * torch.randn(rows, width, generator=g, dtype=dtype)
    ref = logp + 0.4 * torch.randn(rows, width, generator=g, dtype=dtype)
    entropy = torch.rand(rows, width, generator=g, dtype=dtype) * 2
    is_demo = torch.zeros(rows, dtype=torch.bool)
    is_demo[list(demo_rows)] = True
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
        entropy=torch.where(mask, entropy, nan).requires_grad_(True),
        max_len=width + 2,
    )
