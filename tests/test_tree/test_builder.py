"""branched_mtl.tree.builder: the tree builder as library functions, and
the model description it takes (branched_mtl.models.describe)."""
import ast
import glob
import json
import os.path as osp
import re

import numpy as np
import pytest
from conftest import MULTIDIGITS, ROOT
from mmengine.config import Config
from test_build_tree_tool import (FILE_TASKS, LAYERS, TASKS,
                                  planted_affinity, tool, write_affinity)

from branched_mtl.models import describe_model
from branched_mtl.models.describe import (add_block_flops,
                                          describe_tree_blocks)
from branched_mtl.tree import (all_shared, count_tree_params, fully_separate,
                               reorder_affinity, search_tree)
from branched_mtl.tree.budget import Budget
from branched_mtl.tree.builder import build_tree, sweep_alpha
from branched_mtl.tree.problem import (ModelBlocks, load_problem,
                                       read_affinity)
from branched_mtl.tree.tag_builder import build_tag_tree
from branched_mtl.models.describe import tree_flops_info
from branched_mtl.tree.flops import count_tree_flops

BASE = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
SHAPE = (3, 32, 64)


@pytest.fixture(scope='module')
def blocks():
    return describe_tree_blocks(BASE)


@pytest.fixture(scope='module')
def flops_blocks(blocks):
    return add_block_flops(blocks, BASE, SHAPE)


@pytest.fixture
def aff(tmp_path):
    return write_affinity(tmp_path / 'aff.json')


def _expected(alpha, budget=None, block_params=None, head_params=0):
    """The search on the affinity in the model's task order, by hand."""
    reordered = reorder_affinity(planted_affinity(FILE_TASKS), FILE_TASKS,
                                 TASKS)
    return search_tree(reordered, TASKS, [5, 3, 3, 2, 1], alpha=alpha,
                       budget=budget, block_params=block_params,
                       head_params=head_params)


# ------------------------------------------------------------ description
def test_describe_tree_blocks(blocks, flops_blocks):
    info = describe_model(Config.fromfile(BASE).model.to_dict())
    assert blocks == ModelBlocks.from_mapping(info)
    assert blocks.tasks == TASKS and blocks.block_names == LAYERS
    assert blocks.pools == [5, 3, 3, 2, 1]
    assert blocks.block_flops is None and blocks.input_shape is None
    counted = tree_flops_info(Config.fromfile(BASE).model.to_dict(), SHAPE)
    assert flops_blocks.block_flops == counted['block_flops']
    assert flops_blocks.head_flops == counted['head_flops']
    assert flops_blocks.input_shape == SHAPE
    # the rest unchanged
    assert flops_blocks.block_params == blocks.block_params
    with pytest.raises(ValueError, match=r'5 blocks .* but 2 block_params$'):
        ModelBlocks(TASKS, LAYERS, [1, 2], [1] * 5, 0)


# ------------------------------------------------------------ the search
def test_alpha_same_tree_as_the_tool(tmp_path, capsys, aff, blocks):
    by_tool = str(tmp_path / 'tool.py')
    assert tool.main([aff, BASE, '--alpha', '0.02', '--out', by_tool,
                      '--no-draw']) == 0
    printed = capsys.readouterr().out
    out = tmp_path / 'lib' / 'tree.py'
    r = build_tree(aff, blocks, BASE, alpha=0.02, out=out, draw=False)
    expected, cost = _expected(0.02)
    # a tree between the extremes, so that a wrong search shows
    assert expected not in (all_shared(TASKS, 5), fully_separate(TASKS, 5))
    assert r.branches == expected
    assert r.cost == pytest.approx(cost)
    assert r.branches == Config.fromfile(by_tool).model.encoder.branches
    assert r.params == count_tree_params(expected, blocks.block_params,
                                         blocks.head_params)
    assert r.flops is None and r.png is None and r.alpha == 0.02
    assert r.config == str(out)
    cfg = Config.fromfile(r.config)
    assert cfg.model.encoder.branches == r.branches
    assert cfg.model.encoder.tasks == TASKS  # inherited from the base
    # the same tables as the tool, config line included
    assert printed == r.text.replace(str(out), by_tool) + '\n'
    # no printing inside
    assert capsys.readouterr().out == ''


def test_budget_same_tree_as_the_tool(tmp_path, capsys, aff, blocks):
    floor = sum(blocks.block_params) + blocks.head_params
    # room for two more copies of the last block
    budget = Budget(floor + 2 * blocks.block_params[-1], 'params')
    by_tool = str(tmp_path / 'tool.py')
    assert tool.main([aff, BASE, '--budget', str(budget.value), '--out',
                      by_tool, '--no-draw']) == 0
    capsys.readouterr()
    r = build_tree(aff, blocks, BASE, budget=budget,
                   out=tmp_path / 'b.py', draw=False)
    expected, _ = _expected(0.0, budget.value, blocks.block_params,
                            blocks.head_params)
    assert r.branches == expected != all_shared(TASKS, 5)
    assert r.branches == Config.fromfile(by_tool).model.encoder.branches
    assert floor < r.params <= budget
    assert Config.fromfile(r.config).model.encoder.branches == r.branches
    assert f', budget {budget.value:,}' in r.text
    # a plain int is a parameter budget
    assert build_tree(aff, blocks, BASE, budget=budget.value).branches == \
        r.branches


def test_flops_budget_is_honoured(aff, flops_blocks):
    b = flops_blocks
    floor = count_tree_flops(all_shared(TASKS, 5), b.block_flops,
                             b.head_flops)
    budget = Budget(floor + 2 * b.block_flops[-1] + 5, 'flops')
    r = build_tree(aff, b, BASE, budget=budget)
    assert r.flops == count_tree_flops(r.branches, b.block_flops,
                                       b.head_flops)
    assert floor < r.flops <= budget
    assert r.config is None and r.png is None
    assert f'FLOPs per 3x32x64 image: {r.flops:,}' in r.text
    assert f'budget {budget.value:,}' in r.text
    # the unit matters: as parameters, the same number lets every task
    # have its own network, far over the FLOPs
    as_params = build_tree(aff, b, BASE, budget=Budget(budget.value))
    assert as_params.branches == fully_separate(TASKS, 5)
    assert as_params.flops > budget
    # below the all-shared network: refused, naming the unit
    with pytest.raises(ValueError, match=f'{floor - 1:,} FLOPs'):
        build_tree(aff, b, BASE, budget=Budget(floor - 1, 'flops'))


def test_budget_must_be_a_budget_and_flops_counted(aff, blocks):
    with pytest.raises(TypeError, match='must be a Budget'):
        build_tree(aff, blocks, BASE, budget='25M')
    with pytest.raises(ValueError, match='needs the blocks\' FLOPs'):
        build_tree(aff, blocks, BASE, budget=Budget(10**9, 'flops'))
    with pytest.raises(ValueError, match='alpha and/or a budget'):
        build_tree(aff, blocks, BASE)


def test_text_holds_the_tree_table(aff, blocks):
    r = build_tree(aff, blocks, BASE, alpha=0.02)
    lines = r.text.splitlines()
    assert lines[0] == 'Tree (one line per block, shallow to deep):'
    for name, part in zip(LAYERS, r.branches):
        row = f'{name}: ' + ' '.join('[' + ' '.join(g) + ']' for g in part)
        assert row in lines
    total = [ln for ln in lines if ln.startswith('total')]
    assert len(total) == 1 and f'{r.cost:.4f}' in total[0]
    assert f'parameters: {r.params:,}' in r.text
    assert r.note is None and 'config:' not in r.text


def test_writes_config_and_drawing(tmp_path, aff, blocks):
    out = str(tmp_path / 'deep' / 'tree.py')
    r = build_tree(read_affinity(aff), blocks, BASE, alpha=0.05, out=out)
    assert r.config == out and r.png == str(tmp_path / 'deep' / 'tree.png')
    with open(r.png, 'rb') as f:
        assert f.read(4) == b'\x89PNG'
    assert Config.fromfile(out).model.encoder.branches == r.branches
    assert r.text.endswith(f'config: {out}\ndrawing: {r.png}')
    with pytest.raises(ValueError, match='.py'):
        build_tree(aff, blocks, BASE, alpha=0.05, out=tmp_path / 'x.txt')


# ------------------------------------------------------------ refusals
def test_layers_that_do_not_match_are_refused(tmp_path, blocks):
    path = write_affinity(tmp_path / 'short.json', layers=LAYERS[:4],
                          affinity=planted_affinity(FILE_TASKS)[:4])
    out = tmp_path / 'x.py'
    with pytest.raises(ValueError) as info:
        build_tree(path, blocks, BASE, alpha=0.1, out=out)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'{path} has 4 blocks')
    assert 'has 5 sharable blocks' in message
    assert not out.exists()
    # the same from a loaded document
    with pytest.raises(ValueError, match=f'^{re.escape(path)} has 4 blocks'):
        build_tree(read_affinity(path), blocks, BASE, alpha=0.1)


def test_tasks_that_do_not_match_are_refused(tmp_path, blocks):
    tasks = ['sum2'] + FILE_TASKS[1:]
    path = write_affinity(tmp_path / 'a.json', tasks=tasks)
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} does not fit {re.escape(BASE)}: "
                       r".*only in the affinity \['sum2'\]"):
        build_tag_tree(path, blocks, BASE, groups=2)


def test_layer_names_matched_by_position_give_a_note(tmp_path, aff, blocks):
    path = write_affinity(tmp_path / 'r.json', layers=list('abcde'))
    r = build_tree(path, blocks, BASE, alpha=0.02)
    assert r.note.startswith("note: the affinity's blocks ['a'")
    assert r.text.splitlines()[0] == r.note
    assert r.branches == build_tree(aff, blocks, BASE, alpha=0.02).branches
    assert load_problem(path, blocks, BASE).note == r.note


# ------------------------------------------------------------ TAG, sweep
def test_build_tag_tree(tmp_path, flops_blocks):
    from test_affinity.test_tag import family_z

    from branched_mtl.affinity.tag import save_tag_affinity
    path = tmp_path / 'tag.json'
    save_tag_affinity(path, TASKS, LAYERS, family_z(), np.ones((5, 5, 5)),
                      {})
    r = build_tag_tree(str(path), flops_blocks, BASE, groups=2,
                       disjoint=True, out=tmp_path / 't.py', draw=False)
    assert r.cost is None and r.selection['sets'] > 0
    assert all(p == r.branches[0] for p in r.branches)
    assert sorted(sorted(g) for g in r.branches[0]) == [
        ['left', 'left_parity', 'sum'], ['right', 'right_parity']]
    assert Config.fromfile(r.config).model.encoder.branches == r.branches
    assert r.flops == count_tree_flops(r.branches, flops_blocks.block_flops,
                                       flops_blocks.head_flops)
    assert 'at most 2 networks, disjoint' in r.text
    # another method's file has no directional Z; the message names it
    rsa = tmp_path / 'rsa.json'
    doc = json.loads(path.read_text())
    doc['method'] = 'rsa'
    rsa.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=f"^{re.escape(str(rsa))}: .*method 'tag'"):
        build_tag_tree(str(rsa), flops_blocks, BASE, groups=2)


def test_sweep_alpha(aff, blocks):
    s = sweep_alpha(aff, blocks, BASE)
    params = [r['params'] for r in s.rows]
    assert params[0] == count_tree_params(fully_separate(TASKS, 5),
                                          blocks.block_params,
                                          blocks.head_params)
    assert params[-1] == sum(blocks.block_params) + blocks.head_params
    lines = s.text.splitlines()
    assert lines[0].startswith('Trees over alpha')
    assert len(lines) == 2 + len(s.rows)


# ------------------------------------------------------------ layering
FORBIDDEN = ('branched_mtl.models', 'branched_mtl.pipeline',
             'branched_mtl.apis', 'branched_mtl.engine')


def test_tree_imports_no_higher_layer():
    """branched_mtl.tree is a low layer: no import of models, pipeline,
    apis or engine, at the top or inside a function."""
    files = sorted(glob.glob(osp.join(ROOT, 'branched_mtl', 'tree', '*.py')))
    assert any(f.endswith('builder.py') for f in files)
    bad = []
    for path in files:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or '']
                names += [f'{node.module}.{a.name}' for a in node.names]
            else:
                continue
            bad += [(osp.basename(path), n) for n in names
                    if n.startswith(FORBIDDEN)]
    assert not bad
