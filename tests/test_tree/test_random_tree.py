import numpy as np

from branched_mtl.tree import random_tree_like, validate_branches

TASKS = ['a', 'b', 'c', 'd', 'e']


def test_random_trees_keep_the_shape_and_vary():
    ref = [[TASKS], [TASKS], [['a', 'b', 'c'], ['d', 'e']],
           [['a', 'b'], ['c'], ['d', 'e']], [['a'], ['b'], ['c'], ['d', 'e']]]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        tree = random_tree_like(ref, TASKS, rng)
        assert validate_branches(tree, TASKS, 5) == tree
        assert [len(p) for p in tree] == [len(p) for p in ref]
        seen.add(str(tree))
    assert len(seen) > 5


def test_extreme_shapes_are_fixed_points():
    sep = [[[t] for t in TASKS]] * 2
    assert random_tree_like(sep, TASKS, np.random.default_rng(1)) == sep
    shared = [[TASKS]] * 2
    assert random_tree_like(shared, TASKS, np.random.default_rng(1)) == shared
