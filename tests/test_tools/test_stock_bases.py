"""A user's config can `_base_` stock mmseg:: / mmpretrain:: configs."""
import os.path as osp

from mmengine.config import Config

from branched_mtl.apis.runner import train

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_config_on_stock_mmseg_schedule_trains(tmp_path):
    cfg_file = tmp_path / 'on_mmseg.py'
    cfg_file.write_text(f"""
_base_ = [
    'mmseg::_base_/schedules/schedule_20k.py',
    {osp.join(ROOT, 'configs/_base_/models/branched_resnet18_thin.py')!r},
    {osp.join(ROOT, 'configs/_base_/datasets/multidigits.py')!r},
]
default_scope = 'branched_mtl'
custom_imports = dict(imports=['branched_mtl'], allow_failed_imports=False)
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1),
                     visualization=dict(_delete_=True, type='IterTimerHook'))
train_dataloader = dict(batch_size=4, dataset=dict(
    num_samples=8, dataset=dict(num_samples=16)))
val_dataloader = dict(dataset=dict(num_samples=8,
                                   dataset=dict(num_samples=16)))
test_dataloader = dict(dataset=dict(num_samples=8))
""")
    cfg = Config.fromfile(str(cfg_file))
    # mmseg's schedule came through: SGD and PolyLR
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.param_scheduler[0].type == 'PolyLR'
    cfg.work_dir = str(tmp_path / 'wd')
    cfg.launcher = 'none'
    runner = train(cfg)
    assert runner.iter == 2
    assert (tmp_path / 'wd' / 'iter_2.pth').exists()


def test_config_on_stock_mmpretrain_schedule_loads(tmp_path):
    cfg_file = tmp_path / 'on_mmpretrain.py'
    cfg_file.write_text(f"""
_base_ = [
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    {osp.join(ROOT, 'configs/_base_/models/branched_resnet18_thin.py')!r},
]
default_scope = 'branched_mtl'
custom_imports = dict(imports=['branched_mtl'], allow_failed_imports=False)
""")
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    from branched_mtl.registry import MODELS
    model = MODELS.build(cfg.model)
    assert model.tasks == ['left', 'right', 'left_parity', 'right_parity',
                           'sum']
