"""TAG's lookahead affinity (branched_mtl.affinity.tag): mapping, file,
tools/build_tree.py --tag-groups, and tools/branch.py --affinity tag end
to end (the selection itself: tests/test_tree/test_tag_selection.py)."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from conftest import MULTIDIGITS, ROOT
from mmengine.config import Config

from branched_mtl.affinity import load_affinity
from branched_mtl.affinity.tag import (load_tag_affinity,
                                       lookahead_affinity, save_tag_affinity)

BASE = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']
LAYERS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'{name}_tool', osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def family_z(tasks=TASKS, num_layers=5, seed=0):
    """Digits help their own parity; the sum helps nobody; deeper splits
    move losses more (larger |Z|)."""
    fam = {'left': 0, 'left_parity': 0, 'right': 1, 'right_parity': 1,
           'sum': 2}
    f = np.array([fam[t] for t in tasks])
    rng = np.random.default_rng(seed)
    out = []
    for l in range(num_layers):
        z = np.where(f[:, None] == f[None, :], 0.02, -0.005) * (l + 1)
        z = z + rng.normal(0, 1e-4, z.shape)
        out.append(z)
    return np.stack(out)


# ------------------------------------------------------------ the mapping
def test_lookahead_affinity_divides_by_the_tasks_own_lookahead():
    z = family_z()
    a, scale = lookahead_affinity(z)
    sym = (z + z.transpose(0, 2, 1)) / 2
    diag = np.diagonal(z, axis1=1, axis2=2)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(a, a.transpose(0, 2, 1))
    expect = sym / np.sqrt(diag[:, :, None] * diag[:, None, :])
    np.testing.assert_allclose(a[:, off], np.clip(expect, -1, 1)[:, off])
    np.testing.assert_allclose(scale, np.exp(np.log(diag).mean(axis=1)))
    assert (np.diagonal(a, axis1=1, axis2=2) == 1).all()
    # raw Z grows with depth; relative to the own lookahead it does not
    assert np.ptp(a[:, 0, 2]) < 0.05 and np.ptp(sym[:, 0, 2]) > 0.05
    # sign kept: the sum's negative transfer is a distance above 1
    assert (a[:, TASKS.index('sum'), TASKS.index('left')] < 0).all()
    # the order of the task pairs is the order of S (equal diagonals)
    assert (np.argsort(a[2][off]) == np.argsort(sym[2][off])).all()


def test_noise_is_not_stretched():
    # a split whose transfers are all noise around 0 stays near 0: the
    # unit is the tasks' own lookahead, not the largest noisy transfer
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1e-5, (1, 4, 4))
    np.fill_diagonal(z[0], 0.01)
    a, _ = lookahead_affinity(z)
    off = ~np.eye(4, dtype=bool)
    assert np.abs(a[0][off]).max() < 0.01


def test_lookahead_affinity_edge_cases():
    a, scale = lookahead_affinity(np.zeros((2, 3, 3)))
    assert (scale == 0).all()
    np.testing.assert_array_equal(a[0], np.eye(3))
    # a task whose own lookahead is not positive: its pairs get 0
    z = np.full((1, 3, 3), 0.01)
    z[0, 1, 1] = -0.001
    a, _ = lookahead_affinity(z)
    assert a[0, 0, 1] == a[0, 1, 2] == 0 and a[0, 0, 2] == 1
    with pytest.raises(ValueError, match='non-finite'):
        lookahead_affinity(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match='shape'):
        lookahead_affinity(np.zeros((2, 3)))


def test_file_round_trip_and_build_tree(tmp_path):
    z = family_z()
    path = tmp_path / 'tag.json'
    counts = np.full(z.shape, 7)
    a = save_tag_affinity(path, TASKS, LAYERS, z, counts, dict(interval=10))
    doc = load_tag_affinity(path)
    assert doc['method'] == 'tag' and doc['tasks'] == TASKS
    np.testing.assert_allclose(doc['affinity'], a)
    np.testing.assert_allclose(doc['lookahead'], z)
    assert doc['meta']['interval'] == 10
    assert doc['meta']['counts'] == counts.tolist()

    out = tmp_path / 'tree.py'
    assert _tool('build_tree').main([str(path), BASE, '--alpha', '0.01',
                                     '--out', str(out), '--no-draw']) == 0
    branches = Config.fromfile(str(out)).model.encoder.branches
    # the families: one branch each at the deepest block
    fams = sorted(sorted(g) for g in branches[-1])
    assert fams == [['left', 'left_parity'], ['right', 'right_parity'],
                    ['sum']]


def test_unmeasured_pair_is_refused(tmp_path):
    z = family_z()
    counts = np.ones(z.shape, dtype=int)
    counts[3, 1, 4] = 0
    with pytest.raises(ValueError, match="'sum' after a step of task "
                       "'right' at split 'layer3'"):
        save_tag_affinity(tmp_path / 'x.json', TASKS, LAYERS, z, counts, {})


def test_build_tree_tag_groups(tmp_path, capsys):
    path = tmp_path / 'tag.json'
    save_tag_affinity(path, TASKS, LAYERS, family_z(), np.ones((5, 5, 5)),
                      {})
    out = tmp_path / 'tag_tree.py'
    tool = _tool('build_tree')
    assert tool.main([str(path), BASE, '--tag-groups', '3', '--out',
                      str(out), '--no-draw', '--input-shape', '3,32,64']) == 0
    printed = capsys.readouterr().out
    branches = Config.fromfile(str(out)).model.encoder.branches
    # separate networks from the input: the same partition at every block
    assert all(p == branches[0] for p in branches)
    assert sorted(sorted(g) for g in branches[0]) == [
        ['left', 'left_parity'], ['right', 'right_parity'], ['sum']]
    assert 'network' in printed and 'FLOPs per 3x32x64 image' in printed
    # an affinity of another method has no directional Z
    rsa = tmp_path / 'rsa.json'
    doc = json.loads(path.read_text())
    doc['method'] = 'rsa'
    rsa.write_text(json.dumps(doc))
    assert tool.main([str(rsa), BASE, '--tag-groups', '2', '--out',
                      str(out), '--no-draw']) == 2
    assert "method 'tag'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([str(path), BASE, '--tag-groups', '2', '--alpha', '1',
                   '--out', str(out)])


# ------------------------------------------------------------ the main job
def test_branch_tool_tag_end_to_end_with_a_flops_budget(tmp_path):
    """tools/branch.py --affinity tag on the pipeline tests' tiny config,
    with a FLOPs budget: the TAG run, its affinity file, a tree within
    the budget, and the report."""
    from test_pipeline.test_branch import write_config
    cfg = write_config(tmp_path, "\nbranch = dict(random_trees=0, probe="
                       "dict(dataset='val', num_samples=8), tag=dict("
                       "interval=2))\n")
    from branched_mtl.models.describe import tree_flops_info
    from branched_mtl.tree.flops import count_tree_flops
    info = tree_flops_info(Config.fromfile(cfg).model.to_dict(), (3, 32, 64))
    num_blocks = len(info['block_flops'])
    shared = count_tree_flops([[['left', 'left_parity', 'sum']]] * num_blocks,
                              info['block_flops'], info['head_flops'])
    # room for one more copy of the last block, not of two
    budget = shared + info['block_flops'][-1] + 10
    wd = tmp_path / 'wd'
    code = _tool('branch').main([cfg, '--work-dir', str(wd), '--affinity',
                                 'tag', '--budget', f'{budget}FLOPs'])
    assert code == 0
    doc = load_affinity(wd / 'affinity' / 'affinity.json')
    assert doc['method'] == 'tag' and doc['blocks'] == LAYERS
    meta = doc['meta']
    assert meta['measurements'] == 2 and meta['run_iters'] == 4
    assert meta['seconds'] > 0 and meta['run_wall_seconds'] >= meta[
        'seconds']
    tree = json.loads((wd / 'stages' / 'tree.json').read_text())['result']
    flops = count_tree_flops(tree['branches'], info['block_flops'],
                             info['head_flops'])
    assert shared <= flops <= budget
    assert [len(p) for p in tree['branches']][:-1] == [1] * (num_blocks - 1)
    assert 'tag' in (wd / 'report.md').read_text()
