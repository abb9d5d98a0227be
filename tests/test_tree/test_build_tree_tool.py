"""tools/build_tree.py and the config writer it uses."""
import argparse
import ast
import importlib.util
import json
import os.path as osp
import re

import numpy as np
import pytest
from conftest import MULTIDIGITS, ROOT

from branched_mtl.tree import (all_shared, count_tree_params, fully_separate,
                               reorder_affinity, search_tree)
from branched_mtl.tree.config_writer import (base_reference,
                                             check_task_names,
                                             render_tree_config)
from branched_mtl.tree.draw import draw_tree, leaf_order

BASE = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
# the base config's order; the affinity file lists them differently
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']
FILE_TASKS = ['sum', 'right_parity', 'left', 'right', 'left_parity']
LAYERS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'build_tree_tool', osp.join(ROOT, 'tools', 'build_tree.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


def planted_affinity(tasks):
    """Digits with their parities; the sum apart; less related deeper."""
    fam = {'left': 0, 'left_parity': 0, 'right': 1, 'right_parity': 1,
           'sum': 2}
    f = np.array([fam[t] for t in tasks])
    rng = np.random.default_rng(0)
    out = []
    for l in range(5):
        a = np.where(f[:, None] == f[None, :], 0.9 - 0.05 * l, 0.6 - 0.1 * l)
        noise = rng.normal(0, 0.01, a.shape)
        a = a + (noise + noise.T) / 2
        np.fill_diagonal(a, 1.0)
        out.append(a)
    return np.stack(out)


def write_affinity(path, tasks=FILE_TASKS, layers=LAYERS, affinity=None):
    if affinity is None:
        affinity = planted_affinity(FILE_TASKS)
    doc = dict(tasks=list(tasks), layers=list(layers), method='rsa',
               affinity=np.asarray(affinity).tolist(), meta={})
    path.write_text(json.dumps(doc))
    return str(path)


# -- pure parts ---------------------------------------------------------------
@pytest.mark.parametrize('text, value', [
    ('25M', 25_000_000), ('300K', 300_000), ('300k', 300_000),
    ('1200000', 1_200_000), ('1.5M', 1_500_000), ('2G', 2 * 10**9),
    ('1_000', 1000)])
def test_parse_budget(text, value):
    assert tool.parse_budget(text) == value


@pytest.mark.parametrize('text', ['25X', '-3M', 'M', '', '1e6'])
def test_parse_budget_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError, match='budget must be'):
        tool.parse_budget(text)


@pytest.mark.parametrize('name', [
    "a'\nimport os", 'a"]))\nos.system("x")#', 'import', 'None', 'a b',
    '1a', '', 'x-y', "__import__('os')"])
def test_injected_task_names_are_refused(name):
    with pytest.raises(ValueError, match='must be Python identifiers'):
        check_task_names(['ok', name])
    with pytest.raises(ValueError, match='must be Python identifiers'):
        render_tree_config('base.py', [[['ok', name]]], ['ok', name])


def test_rendered_config_is_only_data():
    branches = [[['a', 'b', 'c']], [['a', 'b'], ['c']]]
    text = render_tree_config("../x/it's.py", branches, list('abc'),
                              header=['made by a test'],
                              block_names=['stem', 'layer1'])
    body = ast.parse(text).body
    assert [n.targets[0].id for n in body] == ['_base_', 'model']
    assert ast.literal_eval(body[0].value) == "../x/it's.py"
    ns = {}
    exec(compile(text, 'cfg', 'exec'), ns)  # only literals and dict()
    assert ns['model'] == dict(encoder=dict(branches=branches))
    with pytest.raises(ValueError, match='printable'):
        render_tree_config('b.py', branches, list('abc'),
                           header=['x\nimport os'])
    with pytest.raises(ValueError, match='printable'):
        render_tree_config('b\nimport os.py', branches, list('abc'))


def test_base_reference(tmp_path):
    out = str(tmp_path / 'sub' / 'new.py')
    ref = base_reference(BASE, out)
    assert not osp.isabs(ref)
    assert osp.normpath(osp.join(tmp_path / 'sub', ref)) == osp.normpath(BASE)
    with pytest.raises(ValueError, match='package scope'):
        base_reference(str(tmp_path / 'mmseg::x.py'), out)
    with pytest.raises(ValueError, match='substitution'):
        base_reference(str(tmp_path / '{{ fileDirname }}.py'), out)


def test_draw_tree(tmp_path):
    branches = [[['a', 'b', 'c', 'd']], [['a', 'c'], ['b', 'd']],
                [['a'], ['c'], ['b', 'd']]]
    assert leaf_order(branches) == ['a', 'c', 'b', 'd']
    png = draw_tree(branches, str(tmp_path / 'x' / 't.png'), list('abcd'))
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


# -- the tool -----------------------------------------------------------------
@pytest.fixture(scope='module')
def info():
    from mmengine.config import Config

    from branched_mtl.models import describe_model
    return describe_model(Config.fromfile(BASE).model.to_dict())


def test_tool_writes_a_config_that_builds(tmp_path, capsys, info):
    from mmengine.config import Config

    from branched_mtl.registry import MODELS
    assert info['tasks'] == TASKS and info['block_names'] == LAYERS
    aff = write_affinity(tmp_path / 'aff.json')
    out = str(tmp_path / 'trees' / 'chosen.py')
    alpha = 0.02
    assert tool.main([aff, BASE, '--alpha', str(alpha), '--out', out]) == 0
    printed = capsys.readouterr().out

    # the tree the search finds on the affinity reordered to the config: a
    # tool that kept the file's order would give the families wrong names
    reordered = reorder_affinity(planted_affinity(FILE_TASKS), FILE_TASKS,
                                 TASKS)
    expected, cost = search_tree(reordered, TASKS, info['pools'],
                                 alpha=alpha)
    assert expected != search_tree(planted_affinity(FILE_TASKS), TASKS,
                                   info['pools'], alpha=alpha)[0]
    assert expected not in (all_shared(TASKS, 5), fully_separate(TASKS, 5))
    assert 'stem: [' in printed and 'layer4: [' in printed
    assert f'{cost:.4f}' in printed
    params = count_tree_params(expected, info['block_params'],
                               info['head_params'])
    shared = count_tree_params(all_shared(TASKS, 5), info['block_params'],
                               info['head_params'])
    assert f'parameters: {params:,} (all shared {shared:,}' in printed

    base_ref = ast.literal_eval(ast.parse(open(out).read()).body[0].value)
    assert not osp.isabs(base_ref)
    assert osp.samefile(osp.join(osp.dirname(out), base_ref), BASE)
    cfg = Config.fromfile(out)
    assert cfg.model.encoder.branches == expected
    assert cfg.model.encoder.tasks == TASKS  # inherited, not rewritten
    assert cfg.train_dataloader is not None  # the rest of the base too
    model = MODELS.build(cfg.model)
    assert model.encoder.branches == expected
    assert sum(p.numel() for p in model.parameters()) == params
    with open(osp.join(tmp_path, 'trees', 'chosen.png'), 'rb') as f:
        assert f.read(4) == b'\x89PNG'


def test_tool_budget_and_sweep(tmp_path, capsys, info):
    from mmengine.config import Config
    aff = write_affinity(tmp_path / 'aff.json')
    floor = sum(info['block_params']) + info['head_params']
    out = str(tmp_path / 'b.py')
    # room for two more copies of the last block: at most 3 branches there
    budget = floor + 2 * info['block_params'][-1]
    assert tool.main([aff, BASE, '--budget', str(budget), '--out', out]) == 0
    branches = Config.fromfile(out).model.encoder.branches
    assert count_tree_params(branches, info['block_params'],
                             info['head_params']) <= budget
    assert branches != all_shared(TASKS, 5)
    assert len(branches[-1]) <= 3
    capsys.readouterr()

    assert tool.main([aff, BASE, '--budget', str(floor - 1), '--out',
                      str(tmp_path / 'c.py')]) == 2
    err = capsys.readouterr().err
    assert f'no tree fits the budget of {floor - 1:,} parameters' in err
    assert not osp.exists(tmp_path / 'c.py')

    assert tool.main([aff, BASE, '--alpha-sweep']) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines if ln.strip() and ln.split()[0][0].isdigit()]
    assert len(rows) >= 3
    params = [int(r.split()[2].replace(',', '')) for r in rows]
    # from fully separate (alpha = 0) down to all shared (large alpha)
    assert params[0] == count_tree_params(
        fully_separate(TASKS, 5), info['block_params'], info['head_params'])
    assert params[-1] == floor


@pytest.mark.parametrize('kind, pattern', [
    ('tasks', r"only in the affinity \['sum2'\], only in the model "
              r"\['sum'\]"),
    ('layers', r'has 4 blocks .* has 5 sharable blocks'),
    ('names', r'must be Python identifiers'),
    ('asym', r'not symmetric'),
])
def test_tool_refuses_bad_affinity_files(tmp_path, capsys, kind, pattern):
    tasks, layers, aff = list(FILE_TASKS), LAYERS, None
    if kind == 'tasks':
        tasks[0] = 'sum2'
    elif kind == 'layers':
        layers = LAYERS[:4]
        aff = planted_affinity(tasks)[:4]
    elif kind == 'names':
        tasks[0] = "sum']]))\nimport os\n#"
    elif kind == 'asym':
        aff = planted_affinity(tasks)
        aff[2, 0, 1] += 0.2
    path = write_affinity(tmp_path / 'aff.json', tasks, layers, aff)
    out = tmp_path / 'x.py'
    assert tool.main([path, BASE, '--alpha', '0.1', '--out', str(out)]) == 2
    assert re.search(pattern, capsys.readouterr().err)
    assert not out.exists()
