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
        dataset = st[name].dataset
        # the probe split's wrapper holds the data set that has the tasks
        dataset = dataset.get('dataset', dataset)
        assert dataset.tasks == ['sum'], name
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


CELEBA = osp.join(ROOT, 'configs', 'celeba', 'vgg16_all-shared_celeba.py')
NYU = osp.join(ROOT, 'configs', 'nyu',
               'resnet50-d8-psp_all-shared_nyu-480x640.py')


def _iter_cfg(max_iters: int, *schedulers: dict) -> Config:
    return Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters,
                       val_interval=max_iters),
        param_scheduler=list(schedulers)))


def _lrs(cfg: Config) -> list:
    """The lr of each training iteration, stepped the way the runner does
    (``end`` defaults to max_iters; one step after each iteration)."""
    import torch
    from mmengine.registry import PARAM_SCHEDULERS
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheds = []
    for sched in cfg.param_scheduler:
        sched = dict(sched, optimizer=opt)
        sched.setdefault('end', cfg.train_cfg.max_iters)
        scheds.append(PARAM_SCHEDULERS.build(sched))
    lrs = []
    for _ in range(cfg.train_cfg.max_iters):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for sched in scheds:
            sched.step()
    return lrs


@pytest.mark.parametrize('path,iters', [(CELEBA, 60), (CELEBA, 7),
                                        (NYU, 28), (NYU, 7)])
def test_set_train_iters_scales_milestones(path, iters):
    cfg = Config.fromfile(path)
    old = cfg.param_scheduler[0]
    old_max = cfg.train_cfg.max_iters
    assert old.type == 'MultiStepLR' and not old.by_epoch
    old_ms = list(old.milestones)
    set_train_iters(cfg, iters)
    ms = cfg.param_scheduler[0].milestones
    assert cfg.train_cfg.max_iters == iters
    # every decay still happens, in order, before the new end of training
    assert len(ms) == len(old_ms) and ms == sorted(set(ms))
    assert 1 <= ms[0] and ms[-1] < iters
    for m, o in zip(ms, old_ms):  # at the same relative position
        assert abs(m / iters - o / old_max) <= 1 / iters
    lrs = _lrs(cfg)
    gamma = cfg.param_scheduler[0].gamma
    assert lrs[0] == 1.0
    assert lrs[-1] == pytest.approx(gamma**len(ms))


def test_set_train_iters_exact_milestones():
    cfg = Config.fromfile(CELEBA)  # milestones 40000, 80000 of 120000
    set_train_iters(cfg, 60)
    assert cfg.param_scheduler[0].milestones == [20, 40]
    assert cfg.train_cfg.val_interval == 5
    cfg = Config.fromfile(NYU)  # milestones 12000, 24000 of 28000
    set_train_iters(cfg, 7)
    assert cfg.param_scheduler[0].milestones == [3, 6]


def test_set_train_iters_milestones_kept_apart():
    # 10 and 11 of 100 both round to 1 of 10: the second moves to 2
    cfg = _iter_cfg(100, dict(type='MultiStepLR', by_epoch=False,
                              milestones=[10, 11, 50]))
    set_train_iters(cfg, 10)
    assert cfg.param_scheduler[0].milestones == [1, 2, 5]
    # a decay that cannot stay inside training is an error, not dropped
    cfg = Config.fromfile(CELEBA)
    before = cfg.pretty_text
    with pytest.raises(ValueError,
                       match=r'param_scheduler\[0\] \(MultiStepLR\).*'
                       r'milestones'):
        set_train_iters(cfg, 2)
    assert cfg.pretty_text == before  # refused configs are left untouched


def test_set_train_iters_step_lr():
    cfg = _iter_cfg(1000, dict(type='StepLR', by_epoch=False,
                               step_size=300, gamma=0.5))
    set_train_iters(cfg, 10)
    assert cfg.param_scheduler[0].step_size == 3
    lrs = _lrs(cfg)
    assert lrs[2] == 1.0 and lrs[3] == 0.5 and lrs[9] == 0.125


def test_set_train_iters_cosine():
    cfg = _iter_cfg(
        1000,
        dict(type='LinearLR', by_epoch=False, start_factor=0.1, begin=0,
             end=100),
        dict(type='CosineAnnealingLR', by_epoch=False, T_max=900,
             begin=100, end=1000, eta_min=0.0),
        dict(type='CosineRestartLR', by_epoch=False, periods=[333, 333, 334],
             restart_weights=[1, 1, 1], eta_min=0.0),
        dict(type='OneCycleLR', by_epoch=False, eta_max=1.0,
             total_steps=1000),
        dict(type='CosineAnnealingMomentum', by_epoch=False, T_max=1000))
    set_train_iters(cfg, 50)
    warm, cos, restart, one_cycle, mom = cfg.param_scheduler
    assert (warm.begin, warm.end) == (0, 5)
    assert (cos.begin, cos.end, cos.T_max) == (5, 50, 45)
    assert restart.periods == [17, 16, 17]
    assert one_cycle.total_steps == 50
    assert mom.T_max == 50
    # a cosine schedule still reaches eta_min at the new end of training
    cfg = _iter_cfg(1000, dict(type='CosineAnnealingLR', by_epoch=False,
                               T_max=1000, eta_min=0.0))
    set_train_iters(cfg, 20)
    lrs = _lrs(cfg)
    assert lrs[10] == pytest.approx(0.5) and lrs[-1] < 0.01


def test_set_train_iters_unknown_and_epoch_schedulers():
    cfg = _iter_cfg(
        100, dict(type='LinearLR', by_epoch=False, begin=0, end=10),
        dict(type='mmdet.QuadraticWarmupLR', by_epoch=False, end=10))
    with pytest.raises(ValueError,
                       match=r'param_scheduler\[1\] \(QuadraticWarmupLR\)'):
        set_train_iters(cfg, 10)
    assert cfg.train_cfg.max_iters == 100  # nothing changed
    assert cfg.param_scheduler[0].end == 10
    # epoch-based schedulers do not count iterations: left alone
    epoch = dict(type='MultiStepLR', milestones=[3, 6])
    cfg = _iter_cfg(100, epoch, dict(type='Foo', by_epoch=True, end=5))
    set_train_iters(cfg, 10)
    assert cfg.param_scheduler[0].milestones == [3, 6]
    # epoch counts converted at build time: kept, with a warning
    cfg = _iter_cfg(100, dict(epoch, convert_to_iter_based=True))
    with pytest.warns(UserWarning, match=r'param_scheduler\[0\].*epoch'):
        set_train_iters(cfg, 10)
    assert cfg.param_scheduler[0].milestones == [3, 6]


def test_set_train_iters_per_optimizer_schedulers():
    cfg = _iter_cfg(100)
    cfg.param_scheduler = dict(
        gen=dict(type='MultiStepLR', by_epoch=False, milestones=[50]),
        disc=[dict(type='Nope', by_epoch=False)])
    with pytest.raises(ValueError, match=r"\['disc'\]\[0\] \(Nope\)"):
        set_train_iters(cfg, 10)
    cfg.param_scheduler.disc[0].type = 'StepLR'
    cfg.param_scheduler.disc[0].step_size = 20
    set_train_iters(cfg, 10)
    assert cfg.param_scheduler.gen.milestones == [5]
    assert cfg.param_scheduler.disc[0].step_size == 2


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
