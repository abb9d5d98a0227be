"""FLOPs budgets: parsing, a tree's FLOPs against mmengine's count of the
built model, the search under a FLOPs budget, and the tools' checks."""
import importlib.util
import logging
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import MULTIDIGITS, ROOT
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from branched_mtl.registry import MODELS
from branched_mtl.tree import (all_shared, count_tree_params, parse_budget,
                               search_tree)
from branched_mtl.tree.budget import (Budget, is_flops_budget,
                                      parse_size_budget)
from branched_mtl.models.describe import tree_flops_info
from branched_mtl.tree.flops import count_tree_flops, parse_input_shape
from branched_mtl.utils.errors import UserError

BASE = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']
SHAPE = (3, 32, 64)


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'{name}_tool_flops', osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------ parsing
@pytest.mark.parametrize('text, value', [
    ('3.5GFLOPs', 3_500_000_000), ('800MFLOPs', 800_000_000),
    ('800 MFLOPS', 800_000_000), ('12kflops', 12_000), ('1.5TFLOPs', 1.5e12),
    ('950FLOPs', 950), ('2GFLOP', 2 * 10**9)])
def test_parse_flops(text, value):
    b = parse_size_budget(text)
    assert b.unit == 'flops' and b.value == int(value)
    assert is_flops_budget(text)
    # the text tools pass on reads back the same
    assert parse_size_budget(str(b)) == b and parse_size_budget(
        str(b)).unit == 'flops'


@pytest.mark.parametrize('text', ['GFLOPs', '3.5XFLOPs', '3.5GFLOPsx',
                                  '1e9FLOPs', '-1GFLOPs', '60%FLOPs'])
def test_bad_flops_name_the_value(text):
    with pytest.raises(ValueError, match=repr(text).replace('%', '%')
                       .replace('.', r'\.')):
        parse_size_budget(text)


def test_parameter_budgets_unchanged():
    b = parse_size_budget('25M')
    assert b == 25_000_000 and b.unit == 'params' and str(b) == '25000000'
    assert parse_size_budget('60%', 1000) == 600
    assert not is_flops_budget('25M')
    # the parameter parser refuses FLOPs instead of misreading them
    with pytest.raises(ValueError, match='FLOPs budget'):
        parse_budget('3.5GFLOPs')
    with pytest.raises(ValueError, match="'3.5Q'"):
        parse_size_budget('3.5Q')
    assert repr(Budget(5, 'flops')) == "Budget(5, 'flops')"


def test_parse_input_shape():
    assert parse_input_shape('3,32,64') == SHAPE
    assert parse_input_shape('3x32x64') == SHAPE
    with pytest.raises(ValueError, match="'3,32'"):
        parse_input_shape('3,32')


# ------------------------------------------------------------ counting
def test_tree_flops_equal_mmengine_count_of_the_built_model():
    init_default_scope('branched_mtl')
    cfg = Config.fromfile(BASE)
    info = tree_flops_info(cfg.model.to_dict(), SHAPE)
    assert info['block_names'] == ['stem', 'layer1', 'layer2', 'layer3',
                                   'layer4']
    assert min(info['block_flops']) > 0 and info['head_flops'] > 0
    tree = [[TASKS]] * 2 + [[TASKS[:2], TASKS[2:]]] + [
        [TASKS[:1], TASKS[1:2], TASKS[2:4], TASKS[4:]]] * 2
    model_cfg = cfg.model.to_dict()
    model_cfg['encoder']['branches'] = tree
    model = MODELS.build(model_cfg).eval()
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        counted = get_model_complexity_info(
            model, inputs=(torch.zeros(1, *SHAPE), ), show_table=False,
            show_arch=False)['flops']
    finally:
        logger.setLevel(level)
    expected = count_tree_flops(tree, info['block_flops'],
                                info['head_flops'])
    assert counted == expected
    assert expected == info['total'] + info['block_flops'][2] + \
        3 * (info['block_flops'][3] + info['block_flops'][4])


# ------------------------------------------------------------ the search
def test_search_respects_flops_not_parameters():
    """Parameters grow with depth, FLOPs shrink: a FLOPs budget that fits
    one more copy of the deep block but not of the shallow one."""
    tasks = ['a', 'b']
    aff = np.array([[[1, 0.9], [0.9, 1]], [[1, -0.5], [-0.5, 1]]])
    flops = [100, 10]
    params = [1, 1000]
    budget = count_tree_params(all_shared(tasks, 2), flops, 5) + 15
    for method in ('exact', 'beam'):
        tree, _ = search_tree(aff, tasks, [1, 0], alpha=0.0, budget=budget,
                              block_params=flops, head_params=5,
                              method=method, budget_unit='FLOPs')
        assert tree == [[['a', 'b']], [['a'], ['b']]], method
        assert count_tree_flops(tree, flops, 5) <= budget
        # the same slack over the all-shared tree in parameters: no second
        # copy of the deep block fits, and splitting shallower re-merges
        slack = count_tree_params(all_shared(tasks, 2), params, 5) + 15
        tree, _ = search_tree(aff, tasks, [1, 0], alpha=0.0, budget=slack,
                              block_params=params, head_params=5,
                              method=method)
        assert tree == all_shared(tasks, 2), method
    with pytest.raises(ValueError, match='budget of 100 FLOPs'):
        search_tree(aff, tasks, [1, 0], budget=100, block_params=flops,
                    head_params=5, budget_unit='FLOPs')


def test_build_tree_flops_budget(tmp_path, capsys):
    from test_build_tree_tool import write_affinity
    aff = write_affinity(tmp_path / 'a.json')
    init_default_scope('branched_mtl')
    info = tree_flops_info(Config.fromfile(BASE).model.to_dict(), SHAPE)
    floor = info['total']
    budget = floor + 2 * info['block_flops'][4] + 5
    out = tmp_path / 'tree.py'
    tool = _tool('build_tree')
    # the input size from the config's first test image
    assert tool.main([aff, BASE, '--budget', f'{budget}FLOPs', '--out',
                      str(out), '--no-draw']) == 0
    printed = capsys.readouterr().out
    tree = Config.fromfile(str(out)).model.encoder.branches
    flops = count_tree_flops(tree, info['block_flops'], info['head_flops'])
    assert floor < flops <= budget
    assert f'flops={flops}' in out.read_text()
    assert 'FLOPs per 3x32x64 image' in printed
    # below the all-shared network: one error line naming the unit
    assert tool.main([aff, BASE, '--budget', f'{floor - 1}FLOPs', '--out',
                      str(out), '--no-draw']) == 2
    assert 'FLOPs' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([aff, BASE, '--budget', '3.5XFLOPs', '--out', str(out)])
    assert "'3.5XFLOPs'" in capsys.readouterr().err


def test_branch_job_checks_a_flops_budget_before_training(tmp_path):
    from branched_mtl.pipeline import BranchJob
    cfg = osp.join(MULTIDIGITS, 'branch_multidigits.py')
    with pytest.raises(UserError, match='below the all-shared network'):
        BranchJob(cfg, str(tmp_path / 'a'), budget='1MFLOPs')
    job = BranchJob(cfg, str(tmp_path / 'b'), budget='9MFLOPs')
    assert job.budget == 9000000 and job.budget.unit == 'flops'
    assert str(job.budget) == '9000000FLOPs'
    assert not osp.exists(tmp_path / 'a')
