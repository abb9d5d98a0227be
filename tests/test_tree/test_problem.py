"""branched_mtl.tree.problem: an affinity matched to a model, including an
affinity measured at the deepest blocks only (a tournament sweep that
skips the splits its budget cannot branch at)."""
import numpy as np
import pytest

from branched_mtl.tree.budget import Budget, shallowest_branch
from branched_mtl.tree.builder import build_tree, sweep_alpha
from branched_mtl.tree.problem import ModelBlocks, load_problem

TASKS = ['a', 'b', 'c', 'd']
NAMES = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
SIZES = [100, 200, 400, 800, 1600]   # one copy of each block
HEADS = 40


def blocks(flops=False):
    extra = dict(block_flops=[5000, 4000, 3000, 2000, 1000],
                 head_flops=10, input_shape=(3, 8, 8)) if flops else {}
    return ModelBlocks(tasks=TASKS, block_names=NAMES, block_params=SIZES,
                       pools=[5, 4, 3, 2, 1], head_params=HEADS, **extra)


def random_affinity(rng, num_blocks):
    a = rng.uniform(-1, 1, (num_blocks, len(TASKS), len(TASKS)))
    a = (a + a.transpose(0, 2, 1)) / 2
    for block in a:
        np.fill_diagonal(block, 1.0)
    return a


def doc(affinity, names):
    return dict(tasks=TASKS, blocks=names, affinity=affinity.tolist(),
                method='tournament', meta={})


def test_shallowest_branch_by_hand():
    shared = sum(SIZES) + HEADS   # 3140
    assert shallowest_branch(SIZES, HEADS, shared) is None
    # two copies of layer4 only
    assert shallowest_branch(SIZES, HEADS, shared + 1600) == 4
    assert shallowest_branch(SIZES, HEADS, shared + 1600 - 1) is None
    # layer3 and layer4 twice
    assert shallowest_branch(SIZES, HEADS, shared + 2400) == 3
    assert shallowest_branch(SIZES, HEADS, shared + 2399) == 4
    assert shallowest_branch(SIZES, HEADS, 10 ** 9) == 0
    # FLOPs: the deep blocks are the cheap ones
    assert shallowest_branch([50, 40, 30, 20, 10], 0, 150 + 30) == 3


def test_deep_affinity_gives_the_tree_of_the_whole_affinity():
    """Under a budget that cannot branch above layer3, whatever the
    shallow blocks' affinity is, the search chooses the same tree: so a
    sweep may leave those splits out."""
    rng = np.random.default_rng(0)
    # two groups from layer3 on (+2400) fit, from layer2 on (+2800) not
    budget = Budget(sum(SIZES) + HEADS + 2600, 'params')
    assert shallowest_branch(SIZES, HEADS, budget) == 3
    branched = 0
    for _ in range(10):
        full = random_affinity(rng, 5)
        want = build_tree(doc(full, NAMES), blocks(), 'base.py',
                          budget=budget)
        part = build_tree(doc(full[3:], NAMES[3:]), blocks(), 'base.py',
                          budget=budget)
        assert part.branches == want.branches
        assert part.params == want.params
        # the shallow blocks are one group in every tree of the budget
        assert all(len(p) == 1 for p in want.branches[:3])
        assert 'unmeasured' in part.text
        branched += len(want.branches[4]) > 1
    # most of those trees branch (the test is not vacuous)
    assert branched >= 5


def test_deep_affinity_refused_where_the_budget_can_branch_above():
    full = random_affinity(np.random.default_rng(1), 5)
    budget = Budget(sum(SIZES) + HEADS + 2400, 'params')   # layer3 fits
    with pytest.raises(ValueError, match=r"measures blocks \['layer4'\] "
                       r"only.*can branch at block 'layer3'"):
        build_tree(doc(full[4:], NAMES[4:]), blocks(), 'base.py',
                   budget=budget)
    with pytest.raises(ValueError, match='by alpha alone'):
        build_tree(doc(full[3:], NAMES[3:]), blocks(), 'base.py', alpha=0.1)
    with pytest.raises(ValueError, match='by alpha alone'):
        sweep_alpha(doc(full[3:], NAMES[3:]), blocks(), 'base.py')


def test_deep_affinity_under_a_flops_budget():
    """FLOPs per image fall with depth here: a FLOPs budget is checked
    against the blocks' FLOPs, not their parameters."""
    full = random_affinity(np.random.default_rng(2), 5)
    b = blocks(flops=True)
    shared = sum(b.block_flops) + b.head_flops
    budget = Budget(shared + 1000 + 2000, 'flops')   # layer3 and layer4
    tree = build_tree(doc(full[3:], NAMES[3:]), b, 'base.py', budget=budget)
    assert tree.branches == build_tree(doc(full, NAMES), b, 'base.py',
                                       budget=budget).branches
    with pytest.raises(ValueError, match="can branch at block 'layer3'"):
        build_tree(doc(full[4:], NAMES[4:]), b, 'base.py', budget=budget)


def test_partial_affinity_must_be_the_deepest_blocks():
    full = random_affinity(np.random.default_rng(3), 5)
    # the shallow blocks are not a deep affinity: refused as before
    with pytest.raises(ValueError, match='measure the affinity at every '
                       'block'):
        load_problem(doc(full[:3], NAMES[:3]), blocks(), 'base.py')
    prob = load_problem(doc(full[2:], NAMES[2:]), blocks(), 'base.py')
    assert prob.unmeasured == 2
    assert np.all(prob.affinity[:2] == 1.0)
    np.testing.assert_array_equal(prob.affinity[2:], full[2:])
