"""Sharing an evaluation out over processes: equal shares, and the merged result equals one process's."""

import doctest

import pytest

import retu.eval
from retu.eval import _aggregate, merge_shards, shard_indices

ROWS = [{"id": i, "group": "odd" if i % 2 else "even", "answer": str(i)} for i in range(7)]
SCORES = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [None, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # 2 samples


def test_doctests():
    assert doctest.testmod(retu.eval).failed == 0


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_shards_are_equal_and_cover_each_row_once(world):
    shards = [shard_indices(len(ROWS), world, r) for r in range(world)]
    assert sorted(i for mine, _ in shards for i in mine) == list(range(len(ROWS)))
    assert len({len(mine) + pad for mine, pad in shards}) == 1  # every process answers as many


@pytest.mark.parametrize("world", [1, 2, 3])
def test_merged_shards_equal_the_whole_evaluation(world):
    completions = [[f"c{i}a", f"c{i}b"] for i in range(len(ROWS))]
    whole = _aggregate(ROWS, completions, [s for sc in SCORES for s in sc], 2)
    shards = []
    for rank in range(world):
        mine, _ = shard_indices(len(ROWS), world, rank)
        shards.append((mine, [(completions[i], SCORES[i]) for i in mine]))
    merged = merge_shards(ROWS, shards, 2)
    assert merged.accuracy == whole.accuracy == {"even": 50.0, "odd": pytest.approx(100 * 2 / 3)}
    assert merged.overall == whole.overall and merged.sizes == {"even": 4, "odd": 3}
    assert merged.records == whole.records


def test_missing_shard_is_an_error():
    with pytest.raises(ValueError, match="cover 3 of 7 rows"):
        merge_shards(ROWS, [([0, 2, 4], [([""], [1.0])] * 3)], 1)
