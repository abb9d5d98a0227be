import pytest

from branched_mtl.tree import (all_shared, count_tree_params, format_tree,
                               fully_separate, tree_nodes, validate_branches)

TASKS = ['a', 'b', 'c']
GOOD = [[['a', 'b', 'c']], [['a', 'b', 'c']], [['a', 'b'], ['c']],
        [['a'], ['b'], ['c']]]


def test_valid_tree_round_trips():
    assert validate_branches(GOOD, TASKS, 4) == GOOD
    assert validate_branches(None, TASKS, 2) == all_shared(TASKS, 2)
    # tuples from configs are normalised to lists
    tup = tuple(tuple(tuple(g) for g in p) for p in GOOD)
    assert validate_branches(tup, TASKS, 4) == GOOD


@pytest.mark.parametrize('branches, num_blocks, pattern', [
    (GOOD[:3], 4, r'3 entries but the encoder has 4'),
    ([[['a', 'b', 'x']]] + GOOD[1:], 4, r"block 0, group 0: unknown task 'x'"),
    ([[['a', 'b']]] + GOOD[1:], 4, r"block 0: task\(s\) 'c' in no group"),
    ([[['a', 'b', 'c']], [['a', 'b'], ['b', 'c']]] + GOOD[2:], 4,
     r"block 1: task 'b' is in two groups"),
    ([[['a', 'b', 'c']], [['a', 'b', 'c'], []]] + GOOD[2:], 4,
     r'block 1, group 1 is empty'),
    ([[['a', 'b', 'c']], [['a'], ['b', 'c']], [['a', 'b'], ['c']],
      [['a'], ['b'], ['c']]], 4,
     r"block 2, group 0: tasks 'a', 'b' were in different groups at block 1"),
    ('abc', 1, r'branches must be a list'),
    ([['a', 'b', 'c']], 1, r"block 0, group 0: expected a list of task"),
])
def test_bad_trees_name_block_and_tasks(branches, num_blocks, pattern):
    with pytest.raises(ValueError, match=pattern):
        validate_branches(branches, TASKS, num_blocks)


def test_bad_task_list():
    with pytest.raises(ValueError, match="'a' more than once"):
        validate_branches(None, ['a', 'a'], 1)
    with pytest.raises(ValueError, match='tasks is empty'):
        validate_branches(None, [], 1)


def test_tree_nodes_parents():
    nodes = tree_nodes(GOOD)
    assert nodes[0] == [(-1, ['a', 'b', 'c'])]
    assert nodes[2] == [(0, ['a', 'b']), (0, ['c'])]
    assert nodes[3] == [(0, ['a']), (0, ['b']), (1, ['c'])]


def test_count_tree_params():
    params = [10, 100, 1000, 10000]
    assert count_tree_params(GOOD, params) == 10 + 100 + 2000 + 30000
    assert count_tree_params(fully_separate(TASKS, 4), params) == 3 * 11110
    assert count_tree_params(all_shared(TASKS, 4), params, 5) == 11115
    with pytest.raises(ValueError, match='block_params has 3'):
        count_tree_params(GOOD, params[:3])


def test_format_tree():
    text = format_tree(GOOD, ['stem', 'l1', 'l2', 'l3'])
    assert text.splitlines()[2] == 'l2: [a b] [c]'
