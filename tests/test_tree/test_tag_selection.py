"""TAG's own selection of task groups (branched_mtl.tree.tag_selection)
against its objective written out loop by loop, and its limits."""
import itertools

import numpy as np
import pytest

from branched_mtl.tree import validate_branches
from branched_mtl.tree.tag_selection import (SINGLETON_SCORE,
                                             select_tag_groups,
                                             tag_groups_to_branches)


def naive_selection(z, k, disjoint=False):
    """TAG's objective written out loop by loop (the reference)."""
    n = len(z)
    groups = [g for m in range(1, n + 1)
              for g in itertools.combinations(range(n), m)]

    def score(t, g):
        if len(g) == 1:
            return SINGLETON_SCORE
        return sum(z[s, t] for s in g if s != t) / (len(g) - 1)

    best = None
    for m in range(1, k + 1):
        for sets in itertools.combinations(groups, m):
            if set().union(*sets) != set(range(n)):
                continue
            if disjoint and sum(len(g) for g in sets) != n:
                continue
            value = np.mean([max(score(t, g) for g in sets if t in g)
                             for t in range(n)])
            if best is None or value > best[0] + 1e-12:
                best = (value, sets)
    return best


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('k', [1, 2, 3])
def test_selection_matches_the_objective(seed, k):
    rng = np.random.default_rng(seed)
    tasks = list('abcd')
    z = rng.normal(0, 1, (4, 4))
    for disjoint in (False, True):
        sel = select_tag_groups(z, tasks, k, disjoint=disjoint)
        value, sets = naive_selection(z, k, disjoint)
        assert sel['score'] == pytest.approx(value)
        assert len(sel['groups']) <= k
        assert sorted(sorted(g) for g in sel['groups']) == sorted(
            sorted(tasks[i] for i in g) for g in sets)


def test_selection_known_answer_and_serving():
    tasks = ['a', 'b', 'c', 'd']
    z = np.full((4, 4), -0.5)
    z[0, 1] = z[1, 0] = 1.0  # a, b help each other
    z[2, 3] = z[3, 2] = 1.0  # c, d too
    np.fill_diagonal(z, 2.0)  # self-affinity never counts
    assert select_tag_groups(z, tasks, 1)['groups'] == [tasks]
    sel = select_tag_groups(z, tasks, 2)
    assert sorted(sel['groups']) == [['a', 'b'], ['c', 'd']]
    assert sel['score'] == pytest.approx(1.0)
    # overlapping groups: b helps a and c; a and c hurt each other
    tasks = ['a', 'b', 'c']
    z = np.array([[0, 0.2, -1.0], [1.0, 0, 0.8], [-1.0, 0.1, 0]])
    sel = select_tag_groups(z, tasks, 2)
    assert sorted(sel['groups']) == [['a', 'b'], ['b', 'c']]
    g_ab = sel['groups'].index(['a', 'b'])
    g_bc = sel['groups'].index(['b', 'c'])
    # a gets 1.0 from b; c gets 0.8; b gets 0.2 from a but 0.1 from c
    assert sel['serving'] == {'a': g_ab, 'b': g_ab, 'c': g_bc}
    tree = tag_groups_to_branches(sel, tasks, 3)
    assert tree == [[['a', 'b'], ['c']]] * 3
    validate_branches(tree, tasks, 3)
    with pytest.raises(ValueError, match='k must be'):
        select_tag_groups(z, tasks, 0)


def test_selection_refuses_searches_too_large():
    with pytest.raises(ValueError, match='would evaluate'):
        select_tag_groups(np.zeros((12, 12)), [f't{i}' for i in range(12)],
                          3)
    with pytest.raises(ValueError, match='40 tasks are too many'):
        select_tag_groups(np.zeros((40, 40)), [f't{i}' for i in range(40)],
                          1)
