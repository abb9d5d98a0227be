"""projects/learning_to_branch: supergraph, derivation, search tool.

No ``__init__.py`` in tests/projects/: with one, pytest would import this
folder as the package ``projects`` and hide the checkout's ``projects/``.
"""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import ROOT, tiny_options

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from branched_mtl.apis.runner import load_config, train  # noqa: E402
from branched_mtl.models import BranchedEncoder, split_backbone  # noqa
from branched_mtl.registry import build_stock  # noqa: E402
from branched_mtl.tree import (all_shared, count_tree_params,  # noqa: E402
                               validate_branches)
from projects.learning_to_branch.ltb import (LTBSupergraph,  # noqa: E402
                                             derive_tree,
                                             path_probabilities,
                                             temperature, tree_size)
from projects.learning_to_branch.tools import search as search_tool  # noqa

CONFIG = osp.join(ROOT, 'projects', 'learning_to_branch', 'configs',
                  'ltb_resnet18-thin_multidigits.py')
TASKS = ['a', 'b', 'c']
BACKBONE = dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
                stem_channels=8, out_indices=(1, 3))
# stem, layer1..layer4; a splits from b and c at layer1, b from c at layer3
TREE = [[['a', 'b', 'c']], [['a'], ['b', 'c']], [['a'], ['b', 'c']],
        [['a'], ['b'], ['c']], [['a'], ['b'], ['c']]]


def _force_tree(sg: LTBSupergraph, branches) -> list:
    """Set the logits so that the argmax (and every Gumbel sample) is the
    tree: group g of block b is node g. Returns each node's parent."""
    parents = []
    with torch.no_grad():
        sg.arch_logits_parent.fill_(-1e4)
        sg.arch_logits_head.fill_(-1e4)
        for b in range(1, len(branches)):
            level = []
            for g, group in enumerate(branches[b]):
                p = next(i for i, pg in enumerate(branches[b - 1])
                         if group[0] in pg)
                sg.arch_logits_parent[b - 1, g, p] = 1e4
                level.append(p)
            parents.append(level)
        for t, task in enumerate(sg.tasks):
            g = next(i for i, grp in enumerate(branches[-1]) if task in grp)
            sg.arch_logits_head[t, g] = 1e4
    return parents


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_forced_logits_equal_branched_encoder(mode):
    """Every logit forced to one choice: the supergraph computes exactly the
    BranchedEncoder of that tree (node g of block b = group g there)."""
    torch.manual_seed(0)
    sg = LTBSupergraph(BACKBONE, TASKS, num_nodes=3)
    sg.init_weights()
    # make the copies differ, so that reading the wrong node shows
    with torch.no_grad():
        for level in sg.nodes:
            for node in level:
                for p in node.parameters():
                    p.add_(0.1 * torch.randn_like(p))
    _force_tree(sg, TREE)
    enc = BranchedEncoder(BACKBONE, TASKS, branches=TREE)
    for b, level in enumerate(enc.nodes):
        for g, node in enumerate(level):
            node.load_state_dict(sg.nodes[b][g].state_dict())
    sg.train(mode == 'train')
    enc.train(mode == 'train')
    x = torch.randn(4, 3, 32, 32)
    got, want = sg(x), enc(x)
    assert set(got) == set(TASKS)
    for t in TASKS:
        assert len(got[t]) == len(want[t]) == 2
        for g, w in zip(got[t], want[t]):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_init_weights_is_the_branched_encoders(tmp_path):
    """The copies start as BranchedEncoder's do (the same code): every copy
    of a block from the stock backbone's init_cfg, a checkpoint here; a
    local checkpoint that does not exist is named before anything loads."""
    torch.manual_seed(0)
    stock = build_stock(BACKBONE)
    with torch.no_grad():
        for p in stock.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / 'stock.pth'
    torch.save(stock.state_dict(), path)
    cfg = dict(BACKBONE,
               init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    sg = LTBSupergraph(cfg, TASKS, num_nodes=2)
    sg.init_weights()
    for level, block in zip(sg.nodes, split_backbone(stock)):
        want = block.module.state_dict()
        for node in level:
            got = node.state_dict()
            for k, v in want.items():
                torch.testing.assert_close(got[k], v)
    missing = dict(BACKBONE, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    # BranchedEncoder's own message (mmengine's would not name the backbone)
    with pytest.raises(FileNotFoundError,
                       match=r'backbone mmpretrain\.ResNet: init_cfg '
                       r"checkpoint '.*nope\.pth' does not exist"):
        LTBSupergraph(missing, TASKS, num_nodes=2).init_weights()


def test_block_flops_are_each_stock_blocks_own():
    """encoder_sizes' per-block FLOPs (branched_mtl's tree_flops_info) are
    those of each stock block traced alone on its input; the rest of the
    all-shared network is the heads'."""
    from mmengine.analysis import FlopAnalyzer

    from projects.learning_to_branch.ltb import encoder_sizes
    cfg = Config.fromfile(CONFIG)
    shape = (3, 32, 64)
    sizes = encoder_sizes(cfg.model.to_dict(), shape)
    stock = build_stock(cfg.model.encoder.backbone)
    stock.eval()  # mmpretrain's ResNet.train returns None
    x, want = torch.zeros(1, *shape), []
    with torch.no_grad():
        for block in split_backbone(stock):
            analyzer = FlopAnalyzer(block.module, (x, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            want.append(float(analyzer.total()))
            x = block.module(x)
    assert sizes['flops'] == want and min(want) > 0
    assert sizes['head_flops'] > 0
    assert sizes['shared_flops'] == sum(want) + sizes['head_flops']
    assert sizes['separate_flops'] == 5 * sum(want) + sizes['head_flops']


def test_one_node_per_block_is_the_stock_backbone():
    """K = 1: every task reads the one chain of stock blocks."""
    torch.manual_seed(0)
    stock = build_stock(BACKBONE)
    sg = LTBSupergraph(BACKBONE, TASKS, num_nodes=1)
    for level, block in zip(sg.nodes, split_backbone(stock)):
        level[0].load_state_dict(block.module.state_dict())
    stock.eval()
    sg.eval()
    x = torch.randn(2, 3, 32, 32)
    want = stock(x)
    for t in TASKS:
        for g, w in zip(sg(x)[t], want):
            torch.testing.assert_close(g, w)


def test_expected_size_of_a_certain_tree_is_its_size():
    sg = LTBSupergraph(BACKBONE, TASKS, num_nodes=3)
    _force_tree(sg, TREE)
    size = sg.expected_size(sg.block_params).item()
    assert size == pytest.approx(count_tree_params(TREE, sg.block_params))
    # uncertain logits: between all-shared and fully separate, and a step
    # against the penalty's gradient makes the expected tree smaller
    sg2 = LTBSupergraph(BACKBONE, TASKS, num_nodes=3)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in sg2.arch_parameters():
            p.normal_()
    e = sg2.expected_size(sg2.block_params)
    assert sum(sg2.block_params) < e.item() < 3 * sum(sg2.block_params)
    e.backward()
    with torch.no_grad():
        for p in sg2.arch_parameters():
            p.sub_(0.1 * p.grad / p.grad.abs().max())
    assert sg2.expected_size(sg2.block_params).item() < e.item()
    q = path_probabilities(*sg2.probabilities())
    torch.testing.assert_close(q.sum(-1), torch.ones(3, 5))


def test_temperature_anneals_after_warmup():
    assert temperature(0, 100, 20, (5.0, 0.5)) == 5.0
    assert temperature(19, 100, 20, (5.0, 0.5)) == 5.0
    assert temperature(99, 100, 20, (5.0, 0.5)) == pytest.approx(0.5)
    assert 0.5 < temperature(60, 100, 20, (5.0, 0.5)) < 5.0


def test_derive_argmax_and_budget():
    # every task its own node at every block, and surely so
    k, nb = 3, 5
    parent = np.full((nb - 1, k, k), -5.0)
    for b in range(nb - 1):
        parent[b, range(k), range(k)] = 5.0
    head = np.full((3, k), -5.0)
    head[range(3), range(3)] = 5.0
    # ... but c leans to b's node at the last block
    head[2, 1] = 4.0
    unit = [1, 2, 4, 8, 16]
    free = derive_tree(parent, head, TASKS, unit, fixed=3)
    assert free['branches'] == [[['a'], ['b'], ['c']]] * nb
    assert free['size'] == 3 + 3 * sum(unit) and free['merges'] == 0
    # room for one shared chain fewer: the least likely merge is c into b
    tight = derive_tree(parent, head, TASKS, unit, fixed=3,
                        budget=3 + 3 * sum(unit) - 1)
    assert tight['size'] <= 3 + 3 * sum(unit) - 1
    assert tight['branches'][-1] == [['a'], ['b', 'c']]
    assert tight['log_prob'] < free['log_prob']
    validate_branches(tight['branches'], TASKS, nb)
    # the all-shared size is met by the all-shared tree
    least = derive_tree(parent, head, TASKS, unit, fixed=3,
                        budget=3 + sum(unit))
    assert least['branches'] == all_shared(TASKS, nb)
    with pytest.raises(ValueError, match='below the all-shared tree'):
        derive_tree(parent, head, TASKS, unit, fixed=3, budget=3 + sum(unit)
                    - 1)
    assert tree_size(least['paths'], unit, 3) == 3 + sum(unit)


def _search(work_dir, *extra, iters=3, warmup=1):
    opts = tiny_options(str(work_dir), iters=iters, ckpt_interval=iters)
    return search_tool.main([CONFIG, '--work-dir', str(work_dir), '--iters',
                             str(iters), '--warmup', str(warmup),
                             '--num-nodes', '2', *extra, '--cfg-options',
                             *opts])


def test_search_writes_a_tree_that_trains_and_repeats(tmp_path, capsys):
    """A few search iterations; the logits learn after the warm-up; the
    written config builds and trains with the stock runner; the same seed
    gives the same logits and tree."""
    assert _search(tmp_path / 's1', '--budget', '40%') == 0
    out = capsys.readouterr().out
    assert 'search cost:' in out and 'CPU' in out
    rec = json.load(open(tmp_path / 's1' / 'search.json'))
    assert rec['params'] <= rec['budget']
    assert rec['search_seconds']['wall'] > 0
    assert rec['search_seconds']['cpu'] > 0
    # 2 arch steps moved the logits off their uniform start
    assert np.abs(np.array(rec['head_logits'])).max() > 0
    cfg = Config.fromfile(str(tmp_path / 's1' / 'branched.py'))
    assert validate_branches(cfg.model.encoder.branches, rec['tasks'],
                             5) == rec['branches']
    assert cfg.train_cfg.max_iters == 1200  # the main job's schedule

    assert _search(tmp_path / 's2', '--budget', '40%') == 0
    rec2 = json.load(open(tmp_path / 's2' / 'search.json'))
    assert rec2['head_logits'] == rec['head_logits']
    assert rec2['parent_logits'] == rec['parent_logits']
    assert rec2['branches'] == rec['branches']

    opts = dict(kv.split('=', 1) for kv in tiny_options(
        str(tmp_path / 'train'), iters=2, ckpt_interval=2))
    tcfg = load_config(str(tmp_path / 's1' / 'branched.py'),
                       str(tmp_path / 'train'),
                       {k: eval(v) if v[0].isdigit() else v
                        for k, v in opts.items()})
    runner = train(tcfg)
    assert runner.iter == 2
    assert runner.model.encoder.branches == rec['branches']


def test_flops_budget(tmp_path):
    assert _search(tmp_path, '--flops-budget', '30%', iters=2) == 0
    rec = json.load(open(tmp_path / 'search.json'))
    assert rec['budget_unit'] == 'flops'
    assert rec['flops'] <= rec['budget']
    assert rec['shared_flops'] <= rec['flops']


# config text on top of the MultiDigits config, then options
# a backbone no block splitter is registered for
UNSPLITTABLE = ('model = dict(encoder=dict(backbone=dict(_delete_=True, '
                'type="mmpretrain.LeNet5", num_classes=-1)))')
CARRY = ('model = dict(encoder=dict(tasks=["left", "right", "left_parity", '
         '"right_parity", "sum", "carry"]), head=dict(task_heads=dict('
         'carry=dict(type="mmpretrain.LinearClsHead", num_classes=2, '
         'in_channels=128))))')


def test_dense_config_unchanged(tmp_path):
    """A dense config of branched_mtl (dilated ResNet, five PSP heads)
    searched as it is, within a FLOPs budget."""
    config = osp.join(ROOT, 'configs', 'synthetic_scenes',
                      'branch_synthetic_scenes_cpu.py')
    code = search_tool.main([
        config, '--work-dir', str(tmp_path), '--iters', '2', '--warmup',
        '1', '--num-nodes', '2', '--flops-budget', '60%', '--cfg-options',
        'train_dataloader.dataset.num_samples=8',
        'val_dataloader.dataset.num_samples=8', 'train_dataloader.batch_size=2'
    ])
    assert code == 0
    rec = json.load(open(tmp_path / 'search.json'))
    assert rec['tasks'] == ['semseg', 'depth', 'normals', 'edges', 'instance']
    assert rec['shared_flops'] <= rec['flops'] <= rec['budget']
    cfg = Config.fromfile(str(tmp_path / 'branched.py'))
    assert cfg.model.encoder.branches == rec['branches']


@pytest.mark.parametrize('override, extra, message', [
    (None, ['--budget', '10K'], 'below the all-shared network'),
    (UNSPLITTABLE, [], 'no block splitter for backbone mmpretrain'),
    (CARRY, [], "'carry'"),
    (None, ['--warmup', '50', '--iters', '10'], 'warm-up'),
    # a budget that rounds to nothing, as tools/branch.py says it
    (None, ['--budget', '0.4'], "--budget '0.4' is 0 parameters, no network "
     'fits; give a parameter count (25M, 300K, 1200000) or a percentage of '
     'the single-task models together (60%) (did you mean 40%?)'),
    (None, ['--flops-budget', '0.5'], "--flops-budget '0.5' is 0 FLOPs, no "
     'network fits'),
    # the comparison's size knob grid
    ("ltb = dict(size_weights=[1, 1])", [], 'ltb.size_weights must be'),
    ("ltb = dict(size_weights=[0.5, -1])", [], 'ltb.size_weights must be'),
])
def test_bad_input_names_it(tmp_path, capsys, override, extra, message):
    """A size no tree meets, a backbone whose blocks cannot be branched, a
    task the data does not label: one error line naming it, nothing
    written."""
    config = CONFIG
    if override is not None:
        config = str(tmp_path / 'bad.py')
        with open(config, 'w') as f:
            f.write(f'_base_ = {CONFIG!r}\n{override}\n')
    code = search_tool.main([config, '--work-dir', str(tmp_path / 'w'),
                             *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith('search: error:') and message in err, err
    if override == CARRY:
        assert config in err  # the user's file, not a checked copy
    assert not osp.exists(tmp_path / 'w')


def test_planted_digits_config_retrains_no_model_of_the_main_config(
        tmp_path):
    """The PlantedDigits LTB config is the main PlantedDigits config plus
    the project's import and search settings: in a comparison its models
    train with the main config's text (the same fingerprints), and the
    settings reach the search."""
    from branched_mtl.pipeline.compare import Comparison
    from branched_mtl.pipeline.stage_runner import config_text
    folder = osp.join(ROOT, 'configs', 'planted_digits')
    main = Comparison(osp.join(folder, 'branch_planted_digits.py'),
                      str(tmp_path / 'main'), [0], budget='50%',
                      methods=['all_shared'])
    ltb = Comparison(osp.join(osp.dirname(CONFIG),
                              'ltb_resnet18-w8_planted-digits.py'),
                     str(tmp_path / 'ltb'), [0], budget='50%',
                     methods=['all_shared', 'ltb'])
    assert 'ltb' in ltb.methods
    assert config_text(ltb.cfg) == config_text(main.cfg)
    settings = ltb.search_settings['ltb']
    assert settings['num_nodes'] == 5
    assert settings['size_weights'] == [0.0, 0.3, 1.0, 3.0]
