"""Derived configs of Steps 1-2: single-task, recombined, shared-bottom."""
import os.path as osp

import pytest
from conftest import MULTIDIGITS, ROOT
from mmengine.config import Config

from branched_mtl.apis import (recombined_config, set_data_fraction,
                               set_train_iters, shared_bottom_config,
                               single_task_config)

ALL_SHARED = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
BRANCHED = osp.join(MULTIDIGITS,
                    'resnet18-thin_branched-example_multidigits.py')
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']


@pytest.fixture(scope='module')
def cfg():
    c = Config.fromfile(BRANCHED)
    c.model.head.loss_weights = dict(sum=0.5, left=2.0)
    c.val_evaluator.primary = dict(sum='accuracy/top1', left='accuracy/top1')
    c.val_evaluator.reference = dict(sum=80.0, left=90.0)
    c.val_evaluator.lower_is_better = ['sum', 'left']
    return c


def test_single_task_config_content(cfg):
    before = cfg.pretty_text
    st = single_task_config(cfg, 'sum')
    assert cfg.pretty_text == before, 'input config changed'
    assert st.model.encoder.tasks == ['sum']
    assert st.model.encoder.branches is None  # the tree is gone
    assert st.model.encoder.backbone == cfg.model.encoder.backbone
    assert list(st.model.head.task_heads) == ['sum']
    assert st.model.head.task_heads.sum.num_classes == 19
    assert st.model.head.loss_weights == dict(sum=0.5)
    assert st.model.head.neck == cfg.model.head.neck
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert st[name].dataset.tasks == ['sum'], name
    ev = st.val_evaluator
    assert list(ev.task_metrics) == ['sum']
    assert ev.primary == dict(sum='accuracy/top1')
    assert ev.reference == dict(sum=80.0)
    assert ev.lower_is_better == ['sum']
    # same schedule and optimiser: identical training conditions
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg',
                'randomness'):
        assert st[key] == cfg[key], key


def test_single_task_config_matches_hand_written_one(tmp_path):
    cfg = Config.fromfile(ALL_SHARED)
    ours = single_task_config(cfg, 'left_parity')
    ours.dump(str(tmp_path / 'st.py'))
    ours = Config.fromfile(str(tmp_path / 'st.py'))
    hand = Config.fromfile(osp.join(
        MULTIDIGITS, 'resnet18-thin_single-task-left_parity_multidigits.py'))
    for key in ('model', 'train_dataloader', 'val_dataloader',
                'val_evaluator', 'optim_wrapper', 'train_cfg'):
        assert ours[key] == hand[key], key


def test_single_task_config_bad_task(cfg):
    with pytest.raises(ValueError, match="unknown task.*'depth'"):
        single_task_config(cfg, 'depth')


def test_recombined_config(cfg):
    rc = recombined_config(cfg, 'sum', 'left', 3, '/ck/sum.pth',
                           '/ck/left', probe=dict(num_samples=8))
    assert rc.model.encoder.tasks == ['sum']
    assert rc.model.encoder.frozen_blocks == 3
    hooks = {h.type: h for h in rc.custom_hooks}
    rec = hooks['RecombinationHook']
    assert rec.source_checkpoint == '/ck/left' and rec.split == 3
    assert rec.target_checkpoints == dict(sum='/ck/sum.pth')
    assert rec.source_task == 'left'
    aff = hooks['AffinityHook']
    assert aff.recombination == dict(target='sum', source='left', split=3)
    assert aff.num_samples == 8
    # same source and target is a valid pair (the diagonal)
    recombined_config(cfg, 'sum', 'sum', 1, 'a', 'b')
    for split in (0, 6, 2.5):
        with pytest.raises(ValueError, match='split'):
            recombined_config(cfg, 'sum', 'left', split, 'a', 'b')
    with pytest.raises(ValueError, match='unknown task'):
        recombined_config(cfg, 'sum', 'nope', 1, 'a', 'b')


def test_shared_bottom_config(cfg):
    ck = {t: f'/ck/{t}' for t in ['left', 'sum', 'right']}
    sb = shared_bottom_config(cfg, 'right', 2, ck, '/ck/right',
                              probe=dict(num_samples=8))
    enc = sb.model.encoder
    assert enc.tasks == ['left', 'sum', 'right'] and enc.frozen_blocks == 2
    assert enc.branches[:2] == [[['left', 'sum', 'right']]] * 2
    assert enc.branches[2:] == [[['left'], ['sum'], ['right']]] * 3
    assert list(sb.model.head.task_heads) == ['left', 'sum', 'right']
    hooks = {h.type: h for h in sb.custom_hooks}
    assert hooks['AffinityHook'].recombination == dict(
        target=None, source='right', split=2)
    assert hooks['RecombinationHook'].target_checkpoints == ck
    clip = cfg.copy()
    clip.optim_wrapper.clip_grad = dict(max_norm=1.0)
    with pytest.raises(ValueError, match='clip_grad'):
        shared_bottom_config(clip, 'right', 2, ck, '/ck/right')


def test_cost_knobs():
    cfg = Config.fromfile(ALL_SHARED)
    set_train_iters(cfg, 60)
    assert cfg.train_cfg.max_iters == 60 and cfg.train_cfg.val_interval == 60
    assert cfg.param_scheduler[0].end == 60  # schedule scaled, not cut
    assert cfg.default_hooks.checkpoint.interval == 20
    set_data_fraction(cfg, 0.1, 4000)
    idx = cfg.train_dataloader.dataset.indices
    assert len(idx) == 400 and len(set(idx)) == 400 and max(idx) < 4000
    again = Config.fromfile(ALL_SHARED)
    set_data_fraction(again, 0.1, 4000)
    assert again.train_dataloader.dataset.indices == idx  # same subset
    with pytest.raises(ValueError):
        set_data_fraction(again, 0, 4000)


def test_make_single_task_configs_tool(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'make_st', osp.join(ROOT, 'tools', 'make_single_task_configs.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    paths = tool.main([BRANCHED, '--out-dir', str(tmp_path),
                       '--probe-samples', '16'])
    assert len(paths) == len(TASKS)
    for task, path in zip(TASKS, paths):
        st = Config.fromfile(path)
        assert st.model.encoder.tasks == [task]
        assert st.model.encoder.branches is None
        assert list(st.model.head.task_heads) == [task]
        hook = st.custom_hooks[-1]
        assert hook.type == 'AffinityHook' and hook.num_samples == 16
