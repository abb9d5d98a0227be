"""projects/adashare: PolicyEncoder, losses, search, derived config.

No ``__init__.py`` in tests/projects/: with one, pytest would import this
folder as the package ``projects`` and hide the checkout's ``projects/``.
"""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config, DictAction

from conftest import ROOT, tiny_options

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from branched_mtl.apis.runner import load_config, train  # noqa: E402
from branched_mtl.registry import MODELS, build_stock  # noqa: E402
from branched_mtl.utils import UserError  # noqa: E402
from projects.adashare.adashare import (AdaShareSearch,  # noqa: E402
                                        PolicyEncoder, render_policy_config,
                                        sharing_loss, sharing_weights,
                                        search_settings, sparsity_loss)

CONFIG = osp.join(ROOT, 'projects', 'adashare', 'configs',
                  'adashare_resnet18-thin_multidigits.py')
TOOL = osp.join(ROOT, 'projects', 'adashare', 'tools', 'search.py')
TASKS = ['a', 'b', 'c']
BACKBONE = dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
                stem_channels=8, out_indices=(1, 3))


def _stock_and_encoder(policy=None):
    torch.manual_seed(0)
    stock = build_stock(BACKBONE)
    enc = PolicyEncoder(BACKBONE, TASKS, policy=policy)
    enc.backbone.load_state_dict(stock.state_dict(), strict=False)
    return stock, enc


def _force(enc: PolicyEncoder, choice: int) -> None:
    with torch.no_grad():
        enc.policy_logits.fill_(-60.0)
        enc.policy_logits[..., choice] = 60.0


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_all_select_equals_stock_and_branched_encoder(mode):
    """Every logit forced to *select* (soft Gumbel gates, and argmax) is
    the stock backbone, and the all-shared BranchedEncoder."""
    from branched_mtl.models import BranchedEncoder, split_backbone
    stock, enc = _stock_and_encoder()
    _force(enc, 0)
    branched = BranchedEncoder(BACKBONE, TASKS)
    # the all-shared tree: one node per block, the stock block's weights
    for node, block in zip(branched.nodes, split_backbone(stock)):
        node[0].load_state_dict(block.module.state_dict())
    x = torch.randn(4, 3, 32, 32)
    for m in (stock, enc, branched):
        m.train(mode == 'train')
    torch.manual_seed(1)
    want = stock(x)
    got = enc(x)
    ref = branched(x)
    for t in TASKS:
        assert len(got[t]) == len(want) == 2
        for g, w, r in zip(got[t], want, ref[t]):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(r, w, atol=1e-5, rtol=1e-5)


def test_all_skip_is_the_chain_of_shortcuts():
    """Every logit forced to *skip*: the stem, then only the shortcuts
    (identity, or the projection of blocks that change resolution)."""
    stock, enc = _stock_and_encoder()
    _force(enc, 1)
    enc.eval()
    stock.eval()
    x = torch.randn(2, 3, 32, 32)
    h = stock.maxpool(stock.relu(stock.norm1(stock.conv1(x))))
    outs = []
    for stage, name in enumerate(stock.res_layers):
        for block in getattr(stock, name):
            h = h if block.downsample is None else block.downsample(h)
        outs.append(h)
    got = enc(x)
    for t in TASKS:
        torch.testing.assert_close(got[t][0], outs[1])
        torch.testing.assert_close(got[t][1], outs[3])
    assert sum(enc.changes_shape) == 3  # layer2.0, layer3.0, layer4.0


def test_fixed_policy_drops_blocks_no_task_selects_and_shares_prefixes():
    L = 8
    policy = dict(a=[1] * L, b=[1, 1, 1, 1, 0, 0, 1, 1],
                  c=[1, 1, 1, 1, 0, 0, 1, 1])
    stock, enc = _stock_and_encoder(policy)
    full = PolicyEncoder(BACKBONE, TASKS, policy={t: [1] * L for t in TASKS})
    # layer3.0 and layer3.1: only 'a' selects them; nothing is dropped
    assert sum(p.numel() for p in enc.parameters()) == sum(
        p.numel() for p in full.parameters())
    drop = dict(a=[1, 1, 1, 1, 1, 0, 1, 1], b=[1, 1, 1, 1, 0, 0, 1, 1],
                c=[1, 1, 1, 1, 0, 0, 1, 1])
    _, small = _stock_and_encoder(drop)
    block = stock.layer3[1]
    assert block.downsample is None
    assert sum(p.numel() for p in full.parameters()) - sum(
        p.numel() for p in small.parameters()) == sum(
            p.numel() for p in block.parameters())
    enc.eval()
    out = enc(torch.randn(2, 3, 32, 32))
    # b and c run the same policy: the very same tensors
    assert out['b'][1] is out['c'][1]
    assert out['a'][1] is not out['b'][1]
    assert out['a'][0] is out['b'][0]  # layer2 is before they part


def test_bad_inputs_name_the_thing_at_fault():
    with pytest.raises(UserError, match="unknown task.*'z'"):
        PolicyEncoder(BACKBONE, TASKS, policy=dict(
            a=[1] * 8, b=[1] * 8, c=[1] * 8, z=[1] * 8))
    with pytest.raises(UserError, match="task 'b'"):
        PolicyEncoder(BACKBONE, TASKS, policy=dict(
            a=[1] * 8, b=[1] * 7, c=[1] * 8))
    with pytest.raises(UserError, match='VGG.*cannot be skipped'):
        PolicyEncoder(dict(type='mmpretrain.VGG', depth=11, num_classes=-1),
                      TASKS)
    enc = dict(type='PolicyEncoder', backbone=BACKBONE, tasks=['ok', 'x y'])
    with pytest.raises(ValueError, match="'x y'"):
        render_policy_config('base.py', enc)


def test_sparsity_weight_grid_setting():
    """The comparison's size knob grid is a known setting, checked."""
    from mmengine.config import Config
    ok = search_settings(Config(dict(adashare=dict(
        sparsity_weights=[0.001, 0.1]))))
    assert ok['sparsity_weights'] == [0.001, 0.1]
    assert search_settings(Config(dict()))['sparsity_weights'] is None
    for bad in ([], [0.1, 0.1], [0.1, -1], [float('nan')], 'x'):
        with pytest.raises(UserError, match='adashare.sparsity_weights'):
            search_settings(Config(dict(adashare=dict(
                sparsity_weights=bad))))


def test_losses_and_curriculum_gradients():
    w = sharing_weights(8)
    assert w[0] == 1 and w[-1] == pytest.approx(1 / 8)  # the paper's way
    logits = torch.zeros(3, 8, 2, requires_grad=True)
    assert sharing_loss(logits).item() == 0
    more_skip = torch.zeros(3, 8, 2)
    more_skip[..., 1] = 1.0
    assert sparsity_loss(more_skip, 8) < sparsity_loss(torch.zeros(3, 8, 2),
                                                       8)
    # disagreeing at the bottom block costs 8x what it costs at the top
    bottom, top = torch.zeros(2, 8, 2), torch.zeros(2, 8, 2)
    bottom[0, 0, 0], top[0, 7, 0] = 1.0, 1.0
    assert float(sharing_loss(bottom)) == pytest.approx(
        8 * float(sharing_loss(top)))
    # curriculum: only the last k blocks sample, so only they get gradients
    _, enc = _stock_and_encoder()
    enc.train()
    enc.num_learnable = 3
    out = enc(torch.randn(2, 3, 32, 32))
    sum(o[-1].sum() for o in out.values()).backward()
    grad = enc.policy_logits.grad
    assert torch.all(grad[:, :5] == 0) and torch.any(grad[:, 5:] != 0)


def _opts(options):
    """--cfg-options strings as the dict DictAction makes of them."""
    return {k: DictAction._parse_iterable(v)
            for k, v in (o.split('=', 1) for o in options)}


def _tiny_cfg(work_dir, **adashare):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(_opts(tiny_options(str(work_dir), iters=4)))
    cfg.adashare = dict(cfg.adashare, warmup_iters=2, rounds=3,
                        weight_iters=2, policy_iters=2, **adashare)
    return cfg


def _search(tmp_path, name, seed=0, **adashare):
    cfg = _tiny_cfg(tmp_path / name, **adashare)
    return AdaShareSearch(cfg, str(tmp_path / name), CONFIG, seed=seed,
                          log=lambda s: None).run()


def test_search_is_reproducible_and_its_config_trains(tmp_path):
    first = _search(tmp_path, 's0')
    again = _search(tmp_path, 's0_again')
    other = _search(tmp_path, 's1', seed=1)
    assert first['logits'] == again['logits']
    assert first['policy'] == again['policy']
    assert first['logits'] != other['logits']
    # the curriculum of 3 rounds reached the last 3 blocks only: the
    # bottom 5 still have their initial (equal) logits
    logits = torch.tensor(first['logits'])
    assert torch.all(logits[:, :5] == 0) and torch.any(logits[:, 5:] != 0)
    assert [r['learnable_blocks'] for r in first['history']] == [1, 2, 3]
    assert first['cost']['wall_s'] > 0 and 'CPU' in first['cost']['device']
    rec = json.load(open(tmp_path / 's0' / 'search.json'))
    assert rec['policy'] == first['policy']
    # the derived config: the policy, from scratch, with CONFIG's schedule
    derived = Config.fromfile(first['config'])
    assert derived.model.encoder.policy == first['policy']
    assert derived.model.encoder.type == 'PolicyEncoder'
    assert derived.train_cfg.max_iters == 1200
    model = MODELS.build(derived.model)
    assert model.encoder.policy == first['policy']
    assert sum(p.numel() for p in model.parameters()) == \
        first['size']['params']
    run = load_config(first['config'], str(tmp_path / 'retrain'),
                      _opts(tiny_options(str(tmp_path / 'retrain'),
                                         iters=4)))
    train(run)
    assert osp.isfile(tmp_path / 'retrain' / 'iter_4.pth')


def test_size_target_no_policy_can_meet_is_refused(tmp_path):
    with pytest.raises(UserError, match='params_target.*cannot be met'):
        _search(tmp_path, 'small', params_target='1K')
    with pytest.raises(UserError, match='flops_target'):
        _search(tmp_path, 'small', flops_target=10)
    with pytest.raises(UserError, match="unknown setting.*'sparsity'"):
        _search(tmp_path, 'typo', sparsity=0.1)


def test_search_tool_names_bad_config(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location('adashare_search_tool',
                                                  TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bad = tmp_path / 'vgg.py'
    bad.write_text(
        f"_base_ = [{CONFIG!r}]\n"
        "model = dict(encoder=dict(_delete_=True, type='PolicyEncoder', "
        "backbone=dict(type='mmpretrain.VGG', depth=11, num_classes=-1), "
        "tasks=['left', 'right', 'left_parity', 'right_parity', 'sum']))\n")
    assert tool.main([str(bad), '--work-dir', str(tmp_path / 'w')]) == 2
    assert 'VGG' in capsys.readouterr().err


def test_dense_config_encoder_converts_and_matches_stock():
    """The dense configs run unchanged: their BranchedEncoder (a dilated
    mmseg ResNetV1c-50 with a deep stem) becomes a PolicyEncoder, which with
    every block selected is the stock backbone, and with every block
    skipped keeps the stock output shape."""
    from projects.adashare.adashare import policy_encoder_config
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs', 'synthetic_scenes',
        'resnet50-d8-psp_all-shared_synthetic-scenes-256x512.py'))
    enc_cfg = policy_encoder_config(cfg.model.encoder.to_dict())
    torch.manual_seed(0)
    stock = build_stock(enc_cfg['backbone'])
    enc = MODELS.build(enc_cfg)
    enc.backbone.load_state_dict(stock.state_dict())
    # mmseg's ResNet.train() returns None: no chaining
    stock.eval()
    enc.eval()
    assert enc.num_blocks == 16 and sum(enc.changes_shape) == 4
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = stock(x)
        _force(enc, 0)
        got = enc(x)
        _force(enc, 1)
        skipped = enc(x)
    for t in enc.tasks:
        torch.testing.assert_close(got[t][0], want[0], atol=1e-4, rtol=1e-4)
        assert skipped[t][0].shape == want[0].shape


def test_planted_digits_config_retrains_no_model_of_the_main_config(
        tmp_path):
    """The PlantedDigits AdaShare config is the main PlantedDigits config
    plus the project's import and search settings: in a comparison at a
    FLOPs budget its models train with the main config's text (the same
    fingerprints), the settings reach the search, and the search's
    PolicyEncoder has the main config's backbone and nine tasks."""
    from branched_mtl.pipeline.compare import Comparison
    from branched_mtl.pipeline.stage_runner import config_text
    from projects.adashare.adashare import policy_encoder_config
    main = Comparison(osp.join(ROOT, 'configs', 'planted_digits',
                               'branch_planted_digits.py'),
                      str(tmp_path / 'main'), [0], budget='6MFLOPs',
                      methods=['all_shared'])
    ada = Comparison(osp.join(osp.dirname(CONFIG),
                              'adashare_resnet18-w8_planted-digits.py'),
                     str(tmp_path / 'ada'), [0], budget='6MFLOPs',
                     methods=['all_shared', 'adashare'])
    assert 'adashare' in ada.methods
    assert config_text(ada.cfg) == config_text(main.cfg)
    assert ada.search_settings['adashare']['sparsity_weights'] == [
        0.001, 0.01, 0.1, 1.0]
    enc = policy_encoder_config(ada.cfg.model.encoder.to_dict())
    assert enc['type'] == 'PolicyEncoder'
    assert enc['backbone'] == main.cfg.model.encoder.backbone.to_dict()
    assert enc['backbone']['base_channels'] == 8
    assert enc['tasks'] == list(main.cfg.tasks) and len(enc['tasks']) == 9
