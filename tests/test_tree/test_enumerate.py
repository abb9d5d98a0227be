"""enumerate_trees: every distinct tree within a budget, each once."""
import itertools

import pytest

from branched_mtl.tree import (count_tree_params, enumerate_trees,
                               validate_branches)
from branched_mtl.tree.partitions import members, set_partitions


def _key(tree):
    return tuple(tuple(tuple(sorted(g)) for g in sorted(p)) for p in tree)


def _brute_force(tasks, num_blocks):
    """Every product of partitions in which each block refines the one
    before (a group never merges again)."""
    parts = [[[tasks[i] for i in members(g)] for g in p]
             for p in set_partitions(len(tasks))]
    out = set()
    for chain in itertools.product(parts, repeat=num_blocks):
        ok = all(any(set(g) <= set(c) for c in prev)
                 for prev, cur in zip(chain, chain[1:]) for g in cur)
        if ok:
            out.add(_key(chain))
    return out


@pytest.mark.parametrize('tasks,num_blocks', [
    (['a', 'b'], 2), (['a', 'b', 'c'], 3), (['a', 'b', 'c', 'd'], 2)])
def test_every_tree_once(tasks, num_blocks):
    trees = enumerate_trees(tasks, [1] * num_blocks)
    keys = [_key(t) for t in trees]
    assert len(set(keys)) == len(keys)
    assert set(keys) == _brute_force(tasks, num_blocks)
    for tree in trees:
        validate_branches(tree, tasks, num_blocks)


def test_known_counts():
    # Bell(4) partitions at one block; 3 chains of 2 tasks over 2 blocks
    assert len(enumerate_trees(list('abcd'), [5])) == 15
    assert len(enumerate_trees(['a', 'b'], [1, 1])) == 3


def test_budget_keeps_the_trees_that_fit_smallest_first():
    tasks, sizes, heads = list('abc'), [10, 20, 300], 7
    every = enumerate_trees(tasks, sizes, head_params=heads)
    budget = 10 + 20 + 2 * 300 + heads
    fit = enumerate_trees(tasks, sizes, budget, heads)
    params = [count_tree_params(t, sizes, heads) for t in fit]
    assert params == sorted(params) and max(params) <= budget
    assert {_key(t) for t in fit} == {
        _key(t) for t in every
        if count_tree_params(t, sizes, heads) <= budget}
    # all-shared and the three ways of one task alone at the last block
    assert len(fit) == 4
    # exactly all-shared's size: all-shared alone
    only = enumerate_trees(tasks, sizes, sum(sizes) + heads, heads)
    assert only == [[[tasks]] * 3]


def test_budget_below_all_shared_is_refused():
    with pytest.raises(ValueError, match='below the all-shared tree'):
        enumerate_trees(list('ab'), [10, 10], budget=19)
    with pytest.raises(ValueError, match='needs tasks and blocks'):
        enumerate_trees([], [1])
