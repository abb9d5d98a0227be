import itertools

import numpy as np
import pytest

from branched_mtl.tree import (all_shared, all_shared_alpha,
                               count_tree_params, fully_separate, search_tree,
                               tree_cost, validate_branches)


def rand_aff(n, num_blocks, rng):
    a = rng.random((num_blocks, n, n))
    a = (a + a.transpose(0, 2, 1)) / 2
    for l in range(num_blocks):
        np.fill_diagonal(a[l], 1.0)
    return a


def partitions(items):
    """All set partitions of a list (independent of the search's code)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in partitions(rest):
        yield [[first]] + p
        for k in range(len(p)):
            yield p[:k] + [[first] + p[k]] + p[k + 1:]


def refines(fine, coarse):
    return all(any(set(g) <= set(c) for c in coarse) for g in fine)


def all_trees(tasks, num_blocks):
    parts = list(partitions(list(tasks)))

    def rec(prefix):
        if len(prefix) == num_blocks:
            yield list(prefix)
            return
        for p in parts:
            if not prefix or refines(p, prefix[-1]):
                yield from rec(prefix + [p])

    yield from rec([])


def tournament_aff(n, num_blocks, rng):
    """Shaped like a tournament affinity: (P + P^T) / 2, rows of P summing
    to 1, so the diagonal P[i, i] is below 1 and may be the largest entry."""
    p = rng.dirichlet(np.ones(n), size=(num_blocks, n))
    return (p + p.transpose(0, 2, 1)) / 2


def ref_cost(tree, aff, tasks, pools, alpha):
    """The paper's cost, independent of the package: a group's clustering
    cost is the largest distance between two different tasks of it."""
    aff = np.asarray(aff)
    pos = {t: i for i, t in enumerate(tasks)}
    total = 0.0
    for l, part in enumerate(tree):
        clust = [max((1 - aff[l, pos[s], pos[t]]
                      for s, t in itertools.combinations(g, 2)), default=0.0)
                 for g in part]
        total += (sum(clust) / len(part)
                  + alpha * (len(part) - 1) * 2 ** pools[l])
    return total


def brute_force(aff, tasks, pools, alpha, block_params=None, budget=None):
    best = None
    for t in all_trees(tasks, len(pools)):
        if budget is not None and count_tree_params(t, block_params) > budget:
            continue
        c = ref_cost(t, aff, tasks, pools, alpha)
        if best is None or c < best:
            best = c
    return best


def test_brute_force_enumerator_counts():
    # Bell numbers, and the number of 2-block trees of 3 tasks
    # (e^(e^(e^x - 1) - 1) series): guards the reference itself.
    assert [len(list(partitions(list(range(n))))) for n in range(1, 6)] == \
        [1, 2, 5, 15, 52]
    assert len(list(all_trees('abc', 2))) == 12
    assert len(list(all_trees('abcd', 2))) == 60


CASES = [(n, num_blocks, alpha, seed)
         for seed, (n, num_blocks) in enumerate(
             [(2, 3), (3, 1), (3, 4), (4, 2), (4, 3), (4, 4), (5, 2)])
         for alpha in (0.02, 0.1, 0.3)]


@pytest.mark.parametrize('make_aff', [rand_aff, tournament_aff],
                         ids=['diagonal-1', 'tournament'])
@pytest.mark.parametrize('n, num_blocks, alpha, seed', CASES)
def test_exact_equals_brute_force_and_beam_never_beats_it(
        n, num_blocks, alpha, seed, make_aff):
    rng = np.random.default_rng(seed)
    tasks = [f't{i}' for i in range(n)]
    aff = make_aff(n, num_blocks, rng)
    pools = sorted(rng.integers(0, 3, num_blocks).tolist(), reverse=True)
    trees = list(all_trees(tasks, num_blocks))
    for k in rng.choice(len(trees), min(len(trees), 30), replace=False):
        assert tree_cost(trees[k], aff, tasks, pools, alpha) == \
            pytest.approx(ref_cost(trees[k], aff, tasks, pools, alpha))
    branches, cost = search_tree(aff, tasks, pools, alpha, method='exact')
    assert validate_branches(branches, tasks, num_blocks) == branches
    assert cost == pytest.approx(ref_cost(branches, aff, tasks, pools,
                                          alpha))
    assert cost == pytest.approx(brute_force(aff, tasks, pools, alpha))
    for top_n in (1, 3):
        b2, c2 = search_tree(aff, tasks, pools, alpha, method='beam',
                             top_n=top_n)
        assert validate_branches(b2, tasks, num_blocks) == b2
        assert c2 == pytest.approx(ref_cost(b2, aff, tasks, pools, alpha))
        assert c2 >= cost - 1e-9


@pytest.mark.parametrize('seed', range(4))
def test_budget_exact_equals_brute_force_and_is_respected(seed):
    rng = np.random.default_rng(100 + seed)
    n, num_blocks = 4, 3
    tasks = list('abcd')
    aff = rand_aff(n, num_blocks, rng)
    pools = [2, 1, 0]
    block_params = rng.integers(10, 100, num_blocks).tolist()
    head = 7
    floor = sum(block_params) + head
    top = n * sum(block_params) + head
    for budget in (floor, int(rng.integers(floor, top)), top):
        alpha = float(rng.choice([0.0, 0.01]))
        for method in ('exact', 'beam'):
            b, c = search_tree(aff, tasks, pools, alpha, budget=budget,
                               block_params=block_params, head_params=head,
                               method=method)
            assert validate_branches(b, tasks, num_blocks) == b
            assert count_tree_params(b, block_params, head) <= budget
            if method == 'exact':
                ref = brute_force(aff, tasks, pools, alpha, block_params,
                                  budget - head)
                assert c == pytest.approx(ref)
        if budget == floor:
            assert b == all_shared(tasks, num_blocks)


def test_budget_beam_at_celeba_scale_is_respected():
    rng = np.random.default_rng(7)
    n, num_blocks = 12, 5
    tasks = [f't{i}' for i in range(n)]
    aff = rand_aff(n, num_blocks, rng)
    block_params = [100, 200, 400, 800, 1600]
    for budget in (3100, 6000, 20000):
        b, _ = search_tree(aff, tasks, [4, 3, 2, 1, 0], 0.0, budget=budget,
                           block_params=block_params, head_params=0,
                           method='auto')
        assert validate_branches(b, tasks, num_blocks) == b
        assert count_tree_params(b, block_params) <= budget


@pytest.mark.parametrize('n, method', [(4, 'exact'), (4, 'beam'),
                                       (10, 'auto')])
def test_alpha_extremes(n, method):
    rng = np.random.default_rng(n)
    tasks = [f't{i}' for i in range(n)]
    aff = rand_aff(n, 3, rng)
    pools = [2, 1, 0]
    b, c = search_tree(aff, tasks, pools, 0.0, method=method)
    assert b == fully_separate(tasks, 3)
    assert c == 0.0
    big = all_shared_alpha(aff, tasks) + 1e-3
    b, c = search_tree(aff, tasks, pools, big, method=method)
    assert b == all_shared(tasks, 3)
    assert c == pytest.approx(all_shared_alpha(aff, tasks))


def test_exact_finds_planted_groups():
    # Two clear families at every block. With alpha = 0.1 two branches cost
    # (0.1 + 0.1) / 2 + 0.1 = 0.2, beating three (0.1 / 3 + 0.2), one (0.9)
    # and five (0.4).
    tasks = ['a1', 'a2', 'a3', 'b1', 'b2']
    fam = np.array([0, 0, 0, 1, 1])
    a = np.where(fam[:, None] == fam[None, :], 0.9, 0.1)
    aff = np.stack([a, a, a])
    for method in ('exact', 'beam'):
        b, _ = search_tree(aff, tasks, [0, 0, 0], 0.1, method=method)
        assert b == [[['a1', 'a2', 'a3'], ['b1', 'b2']]] * 3


def test_search_errors():
    tasks = list('abc')
    aff = rand_aff(3, 2, np.random.default_rng(0))
    with pytest.raises(ValueError,
                       match=r'no tree fits the budget of 29 parameters: the '
                       r'smallest tree, all blocks shared, has 35 \(30 in the '
                       r'encoder \+ 5 in the heads\)'):
        search_tree(aff, tasks, [1, 0], budget=29, block_params=[10, 20],
                    head_params=5)
    with pytest.raises(ValueError, match='a budget needs block_params'):
        search_tree(aff, tasks, [1, 0], budget=100)
    with pytest.raises(ValueError, match='block_params has 1 entries'):
        search_tree(aff, tasks, [1, 0], budget=100, block_params=[10])
    with pytest.raises(ValueError, match='method must be'):
        search_tree(aff, tasks, [1, 0], method='greedy')
    with pytest.raises(ValueError, match='11 tasks are too many'):
        search_tree(rand_aff(11, 1, np.random.default_rng(0)),
                    [f't{i}' for i in range(11)], [0], method='exact')
    with pytest.raises(ValueError, match='top_n must be an int >= 1'):
        search_tree(aff, tasks, [1, 0], method='beam', top_n=0)
    with pytest.raises(ValueError, match='alpha must be'):
        search_tree(aff, tasks, [1, 0], alpha=-1)
    bad = aff.copy()
    bad[1, 0, 2] = 0.99
    with pytest.raises(ValueError, match='not symmetric'):
        search_tree(bad, tasks, [1, 0])
    with pytest.raises(ValueError, match='pools has 3 entries'):
        search_tree(aff, tasks, [2, 1, 0])


def test_ties_prefer_the_smaller_tree():
    # a and b are identical (affinity 1): merging them costs nothing, so with
    # alpha = 0 both trees are optimal and the smaller must be chosen.
    tasks = ['a', 'b', 'c']
    a = np.array([[1, 1, .2], [1, 1, .3], [.2, .3, 1]])
    for method in ('exact', 'beam'):
        b, c = search_tree(np.stack([a, a]), tasks, [1, 0], 0.0,
                           method=method)
        assert c == 0.0
        assert b == [[['a', 'b'], ['c']]] * 2


def test_itertools_reference_agrees_on_partition_count():
    # cross-check the reference partitions against itertools on 4 items
    items = list(range(4))
    labelings = {tuple(sorted(tuple(i for i in items if lab[i] == k)
                              for k in set(lab)))
                 for lab in itertools.product(range(4), repeat=4)}
    assert len(labelings) == len(list(partitions(items)))


@pytest.mark.parametrize('seed', range(3))
def test_search_and_cost_ignore_the_diagonal(seed):
    rng = np.random.default_rng(200 + seed)
    n, num_blocks = 5, 3
    tasks = list('abcde')
    aff = tournament_aff(n, num_blocks, rng)
    ones = aff.copy()
    for l in range(num_blocks):
        np.fill_diagonal(ones[l], 1.0)
    pools = [2, 1, 0]
    assert all_shared_alpha(aff, tasks) == \
        pytest.approx(all_shared_alpha(ones, tasks))
    for alpha in (0.01, 0.05, 0.2):
        for method in ('exact', 'beam'):
            b, c = search_tree(aff, tasks, pools, alpha, method=method)
            b1, c1 = search_tree(ones, tasks, pools, alpha, method=method)
            assert b == b1
            assert c == pytest.approx(c1)
        for t in (b, fully_separate(tasks, num_blocks),
                  all_shared(tasks, num_blocks)):
            assert tree_cost(t, aff, tasks, pools, alpha) == \
                pytest.approx(tree_cost(t, ones, tasks, pools, alpha))


@pytest.mark.parametrize('diag', ['tournament', 1.0, 0.0])
@pytest.mark.parametrize('method', ['exact', 'beam'])
def test_related_tasks_are_grouped_whatever_the_diagonal(diag, method):
    # P (row = target, column = source encoder): b's encoder serves a better
    # than a's own (0.6 > 0.3), and the other way round. Grouping a and b
    # costs (1 - 0.6) / 2 + 0.25 = 0.45, separate networks 2 * 0.25 = 0.5,
    # all shared 0.9. Counting 1 - A[a, a] = 0.7 as a distance in the group
    # made grouping cost 0.6 and kept a and b apart.
    p = np.array([[.3, .6, .1], [.6, .3, .1], [.1, .1, .8]])
    a = (p + p.T) / 2
    if diag != 'tournament':
        np.fill_diagonal(a, diag)
    b, c = search_tree(a[None], ['a', 'b', 'c'], [0], alpha=0.25,
                       method=method)
    assert b == [[['a', 'b'], ['c']]]
    assert c == pytest.approx(0.45)


@pytest.mark.parametrize('top_n', [2, 3])
def test_budget_beam_keeps_the_smaller_partial_tree(top_n):
    # Three blocks of 10 parameters, a budget of 60: e.g. [ab c] at every
    # block (2 + 2 + 2 copies), the optimum (cost 0.1 + 0.025 + 0.2). At
    # block 1 the beam reaches [ab c] from [a b c] at block 2 (cost 0.025,
    # 50 parameters) and from [ab c] (cost 0.225, 40 parameters). Only the
    # smaller one can keep two branches at block 0 within the budget; the
    # cheaper one must share block 0 (cost 0.9). Keeping only the cheaper one
    # per partition, or dropping the costlier one because it does not rank in
    # the top n partitions by cost, lost the optimum.
    tasks = ['a', 'b', 'c']

    def block(ab, c):
        return [[1, ab, c], [ab, 1, c], [c, c, 1]]

    aff = np.array([block(.8, .1), block(.95, .85), block(.6, .1)])
    pools, block_params, budget = [2, 1, 0], [10, 10, 10], 60
    ref = brute_force(aff, tasks, pools, 0.0, block_params, budget)
    assert ref == pytest.approx(0.325)
    for method in ('exact', 'beam'):
        b, c = search_tree(aff, tasks, pools, 0.0, budget=budget,
                           block_params=block_params, method=method,
                           top_n=top_n)
        assert b == [[['a', 'b'], ['c']]] * 3
        assert c == pytest.approx(ref)
