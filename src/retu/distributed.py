"""Work shared out over the processes of a distributed run (`accelerate launch`, `torchrun`), the one way.

Process `rank` of `world` takes the contiguous block `rank_block(count, world, rank)` of any list of
`count` items (an RL round's prompts, an RL batch's groups, an evaluation's problems); `gather` hands
every process each process's object in process order, so gathered blocks concatenate back into the
whole list; `broadcast` hands every process the main process's object. Without a process group (one
process) `world_and_rank()` is (1, 0), `gather(x)` is `[x]` and `broadcast(x)` is `x`.
"""

from __future__ import annotations

from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def world_and_rank() -> tuple[int, int]:
    """(processes in the process group, this process's index); (1, 0) without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(), dist.get_rank()


def rank_block(count: int, world: int, rank: int) -> slice:
    """The contiguous share of `count` items that process `rank` of `world` takes; shares differ by at most 1.

    >>> [rank_block(5, 2, r) for r in range(2)]
    [slice(0, 2, None), slice(2, 5, None)]
    """
    return slice(rank * count // world, (rank + 1) * count // world)


def gather(obj: T) -> list[T]:
    """Every process's `obj` (picklable), in process order, on every process; a collective call.

    >>> gather({"loss": 0.5})  # one process
    [{'loss': 0.5}]
    """
    if world_and_rank()[0] == 1:
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: T) -> T:
    """The main process's `obj` (picklable) on every process; a collective call."""
    if world_and_rank()[0] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]

