"""One way to share work out over processes (retu.distributed): contiguous blocks, gathered in order."""

import doctest

from retu import distributed
from retu.distributed import broadcast, gather, rank_block, world_and_rank


def test_rank_blocks_cover_every_item_once():
    for count in range(0, 9):
        for world in (1, 2, 3, 4):
            blocks = [list(range(count))[rank_block(count, world, r)] for r in range(world)]
            assert sum(blocks, []) == list(range(count))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_one_process_gathers_and_broadcasts_its_own_object():
    assert world_and_rank() == (1, 0)
    assert gather({"groups": [1, 2]}) == [{"groups": [1, 2]}]
    assert broadcast(["answers"]) == ["answers"]


def test_doctests():
    result = doctest.testmod(distributed)
    assert result.attempted >= 2 and result.failed == 0
