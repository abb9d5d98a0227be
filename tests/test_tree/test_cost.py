import numpy as np
import pytest

from branched_mtl.tree import (all_shared, all_shared_alpha, check_affinity,
                               fully_separate, reorder_affinity, tree_cost,
                               tree_cost_breakdown)

TASKS = ['a', 'b', 'c']


def _aff():
    # block 0: ab 0.8, ac 0.2, bc 0.4; block 1: ab 0.5, ac 0.1, bc 0.9
    a = np.ones((2, 3, 3))
    for l, (ab, ac, bc) in enumerate([(0.8, 0.2, 0.4), (0.5, 0.1, 0.9)]):
        a[l, 0, 1] = a[l, 1, 0] = ab
        a[l, 0, 2] = a[l, 2, 0] = ac
        a[l, 1, 2] = a[l, 2, 1] = bc
    return a


def test_hand_computed_tree():
    branches = [[['a', 'b', 'c']], [['a', 'b'], ['c']]]
    bd = tree_cost_breakdown(branches, _aff(), TASKS, [2, 1], alpha=0.1)
    # block 0: one group, largest distance 1 - 0.2; no extra branch
    # block 1: [a b] -> 1 - 0.5, [c] -> 0, mean 0.25; (2 - 1) * 2 ** 1
    assert bd['clustering'] == pytest.approx([0.8, 0.25])
    assert bd['complexity'] == pytest.approx([0.0, 2.0])
    assert bd['block'] == pytest.approx([0.8, 0.25 + 0.2])
    assert bd['clustering_total'] == pytest.approx(1.05)
    assert bd['complexity_total'] == pytest.approx(2.0)
    assert bd['total'] == pytest.approx(1.25)
    assert tree_cost(branches, _aff(), TASKS, [2, 1], 0.1) == \
        pytest.approx(1.25)


def test_hand_computed_extremes():
    aff = _aff().tolist()  # nested lists work too
    # fully separate: no clustering cost, (3 - 1) * 2 ** p per block
    sep = fully_separate(TASKS, 2)
    assert tree_cost(sep, aff, TASKS, [2, 1], 0.5) == pytest.approx(
        0.5 * (2 * 4 + 2 * 2))
    # all shared: the largest distance per block, no complexity
    shared = all_shared(TASKS, 2)
    assert tree_cost(shared, aff, TASKS, [2, 1], 3.0) == pytest.approx(
        0.8 + 0.9)
    assert all_shared_alpha(aff, TASKS) == pytest.approx(1.7)
    # group order inside a block does not matter
    b1 = [[['a'], ['b', 'c']], [['c'], ['b'], ['a']]]
    b2 = [[['c', 'b'], ['a']], [['a'], ['b'], ['c']]]
    c1 = tree_cost(b1, aff, TASKS, [0, 0], 1.0)
    assert c1 == pytest.approx(tree_cost(b2, aff, TASKS, [0, 0], 1.0))
    # block 0: [a] 0, [b c] 0.6 -> 0.3 + 1; block 1: 0 + 2
    assert c1 == pytest.approx(0.3 + 1 + 2)


def test_reorder_affinity():
    aff = _aff()
    out = reorder_affinity(aff, TASKS, ['c', 'a', 'b'])
    assert out[1, 0, 1] == pytest.approx(0.1)  # c-a at block 1
    assert out[0, 2, 0] == pytest.approx(0.4)  # b-c at block 0
    with pytest.raises(ValueError, match=r"only in the affinity \['c'\], "
                       r"only in the model \['d'\]"):
        reorder_affinity(aff, TASKS, ['a', 'b', 'd'])


def _with(l, i, j, v, sym=True):
    a = _aff()
    a[l, i, j] = v
    if sym:
        a[l, j, i] = v
    return a


@pytest.mark.parametrize('aff, tasks, pools, alpha, pattern', [
    (_with(1, 0, 2, 0.3, sym=False), TASKS, [0, 0], 1.0,
     r"not symmetric: block 1, A\['a', 'c'\] = 0.3 but A\['c', 'a'\] = 0.1"),
    (_with(0, 1, 2, np.nan), TASKS, [0, 0], 1.0,
     r"non-finite .* block 0, tasks 'b', 'c'"),
    (_with(1, 0, 1, np.inf), TASKS, [0, 0], 1.0, r'non-finite'),
    (_with(1, 0, 1, 1.5), TASKS, [0, 0], 1.0, r'\[-1, 1\].*1.5'),
    (_aff(), ['a', 'b'], [0, 0], 1.0,
     r'shape \(2, 3, 3\) but must be \(blocks, 2, 2\)'),
    (_aff()[0], TASKS, [0, 0], 1.0, r'shape \(3, 3\)'),
    ([[[1, 'x', 0], [0, 1, 0], [0, 0, 1]]], TASKS, [0], 1.0,
     r'could not be read'),
    (_aff(), TASKS, [0, 0, 0], 1.0, r'pools has 3 entries .* 2 blocks'),
    (_aff(), TASKS, [0, -1], 1.0, r'pools\[1\] must be an int >= 0'),
    (_aff(), TASKS, [0, 0], -0.1, r'alpha must be a finite number >= 0'),
    (_aff(), TASKS, [0, 0], float('nan'), r'alpha must be'),
])
def test_bad_inputs(aff, tasks, pools, alpha, pattern):
    with pytest.raises(ValueError, match=pattern):
        tree_cost(all_shared(tasks, len(pools)), aff, tasks, pools, alpha)


def test_invalid_tree_refused():
    remerge = [[['a'], ['b', 'c']], [['a', 'b'], ['c']]]
    with pytest.raises(ValueError, match='re-merge'):
        tree_cost(remerge, _aff(), TASKS, [0, 0], 1.0)


def test_check_affinity_tolerates_rounding():
    a = _aff()
    a[0, 0, 1] += 1e-9
    assert check_affinity(a, TASKS).shape == (2, 3, 3)


@pytest.mark.parametrize('diag', [1.0, 0.2, 0.0, -0.7])
def test_cost_ignores_the_diagonal(diag):
    # A tournament affinity's diagonal is P[i, i] < 1: a task's distance to
    # itself is no distance between two tasks of a group, and must not count.
    a = _aff()
    for l in range(a.shape[0]):
        np.fill_diagonal(a[l], diag)
    assert check_affinity(a, TASKS).shape == (2, 3, 3)
    bd = tree_cost_breakdown([[['a', 'b', 'c']], [['a', 'b'], ['c']]], a,
                             TASKS, [2, 1], alpha=0.1)
    assert bd['clustering'] == pytest.approx([0.8, 0.25])
    assert bd['total'] == pytest.approx(1.25)
    # one-task groups cost nothing, whatever A[i, i]
    assert tree_cost(fully_separate(TASKS, 2), a, TASKS, [2, 1], 0.5) == \
        pytest.approx(0.5 * (2 * 4 + 2 * 2))
    assert all_shared_alpha(a, TASKS) == pytest.approx(1.7)


def test_cost_of_a_pair_is_its_distance_whatever_the_diagonal():
    # a and b: P[a, b] = 0.6 > P[a, a] = 0.3, so 1 - A[a, a] = 0.7 exceeds
    # the distance of the pair, 1 - 0.6 = 0.4.
    a = np.array([[[.3, .6, .1], [.6, .3, .1], [.1, .1, .8]]])
    assert tree_cost([[['a', 'b'], ['c']]], a, TASKS, [0], 0.0) == \
        pytest.approx(0.4 / 2)


def test_non_finite_diagonal_refused():
    a = _aff()
    a[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite .* block 1, tasks "
                       r"'c', 'c'"):
        check_affinity(a, TASKS)
