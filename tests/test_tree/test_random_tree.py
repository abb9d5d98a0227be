"""random_trees_like: relabellings of the reference."""
import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from branched_mtl.tree import (canonical_tree, count_relabellings,
                               random_trees_like, tree_rng, tree_shape,
                               validate_branches)

TASKS = ['a', 'b', 'c', 'd', 'e']

REF = [[TASKS], [['a', 'b', 'c'], ['d', 'e']],
       [['a'], ['b', 'c'], ['d', 'e']], [['a'], ['b'], ['c'], ['d', 'e']]]


def _relabellings(ref, tasks):
    """Every distinct relabelling, by brute force."""
    out = set()
    for perm in itertools.permutations(tasks):
        m = dict(zip(tasks, perm))
        tree = [[[m[t] for t in g] for g in p] for p in ref]
        out.add(str(canonical_tree(tree, tasks)))
    return out


def test_every_tree_is_a_distinct_relabelling_not_the_reference():
    orbit = _relabellings(REF, TASKS)
    assert count_relabellings(REF, TASKS) == len(orbit) == 30
    trees = random_trees_like(REF, TASKS, 10, np.random.default_rng(0))
    keys = [str(t) for t in trees]
    assert len(trees) == 10 and len(set(keys)) == 10
    assert str(canonical_tree(REF, TASKS)) not in keys
    assert set(keys) <= orbit
    for t in trees:
        assert validate_branches(t, TASKS, 4) == t
        # same group sizes at every block
        assert [sorted(map(len, p)) for p in t] == \
            [sorted(map(len, p)) for p in REF]


def test_fewer_only_when_fewer_exist():
    # 1-1-3 below a shared stem: 5 * 4 / 2 = 10 relabellings
    ref = [[TASKS], [['a'], ['b'], ['c', 'd', 'e']]]
    assert count_relabellings(ref, TASKS) == len(_relabellings(ref, TASKS))
    trees = random_trees_like(ref, TASKS, 50, np.random.default_rng(0))
    assert len(trees) == count_relabellings(ref, TASKS) - 1 == 9
    assert random_trees_like([[TASKS]] * 2, TASKS, 5) == []
    assert random_trees_like([[[t] for t in TASKS]] * 2, TASKS, 5) == []
    with pytest.raises(ValueError, match='k must be'):
        random_trees_like(ref, TASKS, -1)


def test_uniform_over_relabellings():
    orbit = sorted(_relabellings(REF, TASKS) - {str(canonical_tree(REF,
                                                                   TASKS))})
    rng = np.random.default_rng(1)
    counts = Counter(str(random_trees_like(REF, TASKS, 1, rng)[0])
                     for _ in range(2900))
    assert set(counts) == set(orbit)
    # 29 cells of 100 expected: a biased draw fails this by far
    assert chisquare([counts[k] for k in orbit]).pvalue > 1e-4


def test_large_task_sets_sample_the_orbit_uniformly():
    tasks = [f't{i}' for i in range(9)]
    ref = [[tasks], [tasks[:2], tasks[2:]]]
    # 9 choose 2 = 36 relabellings, sampled (not enumerated) at 9 tasks
    assert count_relabellings(ref, tasks) == 36
    trees = random_trees_like(ref, tasks, 100, np.random.default_rng(0))
    assert len(trees) == 35 and len({str(t) for t in trees}) == 35


def test_same_shape_same_random_trees():
    # two methods whose trees share a shape meet the same random trees
    other = [[TASKS], [['c', 'd', 'e'], ['a', 'b']],
             [['e'], ['c', 'd'], ['a', 'b']],
             [['e'], ['c'], ['d'], ['a', 'b']]]
    assert tree_shape(other, TASKS) == tree_shape(REF, TASKS)
    a = random_trees_like(REF, TASKS, 29, tree_rng(3, REF, TASKS))
    b = random_trees_like(other, TASKS, 29, tree_rng(3, other, TASKS))
    ref_key, other_key = (str(canonical_tree(t, TASKS)) for t in (REF, other))
    assert [t for t in a if str(t) != other_key] == \
        [t for t in b if str(t) != ref_key]
    assert random_trees_like(REF, TASKS, 5, tree_rng(3, REF, TASKS)) != \
        random_trees_like(REF, TASKS, 5, tree_rng(4, REF, TASKS))
