"""Splitting an optimizer mini-batch into micro-batches must not change the loss or its gradient.

With the global normalisers set (`LossInputs.total_tokens`, `total_demo_tokens`, `total_seqs`,
counted over the whole mini-batch), the micro-batch losses sum to the mini-batch loss for every
aggregation and every hybrid method, under both normalisers.
"""

from dataclasses import replace

import pytest
import torch

from retu.algos.registry import AGGREGATIONS, METHODS, build_loss
from retu.algos.types import LossInputs

from loss_inputs import random_inputs

SPLITS = [[(0, 8)], [(0, 3), (3, 5), (5, 8)], [(i, i + 1) for i in range(8)]]
LOSSES = [("ppo_clip", agg, dict(eps_high=0.28, clip_ratio_c=3.0, beta_kl=0.05, entropy_coef=0.01))
          for agg in AGGREGATIONS]
LOSSES += [("sft_nll", "token_mean", {})]
LOSSES += [(m, None, dict(norm=norm)) for m in METHODS for norm in ("lmax", "token_mean")]


def with_global_totals(inp: LossInputs) -> LossInputs:
    mask = inp.mask
    return replace(inp, total_tokens=mask.sum(), total_demo_tokens=(mask & inp.is_demo[:, None]).sum(),
                   total_seqs=mask.any(-1).sum())


def rows(inp: LossInputs, lo: int, hi: int) -> LossInputs:
    """Rows lo:hi of every per-row and per-token field (the normalisers stay global)."""
    sliced = {k: v[lo:hi] for k, v in inp.__dict__.items()
              if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == inp.mask.shape[0]}
    return replace(inp, **sliced)


def accumulated(loss_fn, inp, split):
    total = sum(loss_fn(rows(inp, lo, hi)).loss for lo, hi in split)
    (grad,) = torch.autograd.grad(total, inp.logprobs)
    return total.detach(), grad


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("term", "agg", "kwargs"), LOSSES)
def test_micro_batch_split_invariance(term, agg, kwargs, seed):
    inp = with_global_totals(random_inputs(seed))
    loss_fn = build_loss(term, agg, **kwargs)
    full_loss, full_grad = accumulated(loss_fn, inp, SPLITS[0])
    for split in SPLITS[1:]:
        loss, grad = accumulated(loss_fn, inp, split)
        torch.testing.assert_close(loss, full_loss, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, full_grad, rtol=1e-12, atol=1e-14)


def test_per_micro_batch_token_mean_is_not_invariant():
    # Without global normalisers each micro-batch normalises itself (verl's faithful mode): the
    # summed loss then depends on the split, which is why the global mode exists.
    inp = random_inputs(0)
    loss_fn = build_loss("ppo_clip", "token_mean")
    full, _ = accumulated(loss_fn, inp, SPLITS[0])
    split, _ = accumulated(loss_fn, inp, SPLITS[1])
    assert not torch.isclose(full, split / len(SPLITS[1]))
    assert not torch.isclose(full, split)
