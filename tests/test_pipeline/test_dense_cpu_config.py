"""The CPU-sized dense main job (configs/synthetic_scenes/
branch_synthetic_scenes_cpu.py, `make demo-dense`): its model is the
paper's dense model made small, and one of its models trains."""
import math
import os.path as osp
import time

import pytest
import torch
import yaml
from mmengine.config import Config

from branched_mtl.apis import single_task_config
from branched_mtl.apis.runner import load_config, train
from branched_mtl.models import describe_model
from branched_mtl.tree import all_shared, count_tree_params

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDER = osp.join(ROOT, 'configs', 'synthetic_scenes')
CPU = osp.join(FOLDER, 'branch_synthetic_scenes_cpu.py')
GPU = osp.join(FOLDER, 'branch_synthetic_scenes.py')
TASKS = ['semseg', 'depth', 'normals', 'edges', 'instance']


def test_cpu_config_is_the_dense_model_made_small():
    cpu, gpu = Config.fromfile(CPU), Config.fromfile(GPU)
    assert cpu.model.encoder.tasks == TASKS
    assert sorted(cpu.model.head.task_heads) == sorted(TASKS)
    # every head is a PSP head, as in the GPU config
    assert {h.type for h in cpu.model.head.task_heads.values()} == {
        'mmseg.PSPHead', 'PSPDepthHead', 'PSPNormalHead', 'PSPEdgeHead',
        'PSPOffsetHead'}
    small, big = cpu.model.encoder.backbone, gpu.model.encoder.backbone
    assert small.type == big.type == 'mmseg.ResNetV1c'
    # dilated like the real one: output stride 8
    for key in ('dilations', 'strides', 'contract_dilation', 'num_stages'):
        assert small[key] == big[key], key
    assert small.depth == 18 and small.base_channels < 64
    # every task scored on the probe split, with the report's metrics
    assert sorted(cpu.val_evaluator.task_metrics) == sorted(TASKS)
    assert cpu.val_evaluator.primary == dict(
        semseg='mIoU', depth='rmse', normals='mean', edges='fmeasure',
        instance='mean_error')
    assert cpu.val_dataloader.dataset.split == 'val'
    assert cpu.test_dataloader.dataset.split == 'test'
    assert cpu.branch.random_trees == 3
    # the metafile lists the parameters of the model the config builds
    info = describe_model(cpu.model.to_dict())
    params = count_tree_params(all_shared(TASKS, len(info['block_names'])),
                               info['block_params'], info['head_params'])
    with open(osp.join(FOLDER, 'metafile.yml')) as f:
        listed = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert listed['branch_synthetic_scenes_cpu']['Metadata'][
        'Parameters'] == params
    assert listed['branch_synthetic_scenes_cpu']['Metadata'][
        'Iterations'] == cpu.train_cfg.max_iters



@pytest.mark.parametrize('iters', [1200, 2000, 4000])
def test_redo_schedules_change_only_the_schedule(iters):
    # the comparison redo's two candidate schedules: the whole PolyLR
    # schedule, validation and checkpoint scale with the length, the model
    # and the loss weights are the CPU config's, the sweep is the paper's
    name = f'branch_synthetic_scenes_cpu_{iters}it'
    cfg = Config.fromfile(osp.join(FOLDER, name + '.py'))
    cpu = Config.fromfile(CPU)
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_cfg.val_interval == iters // 10
    (sched, ) = cfg.param_scheduler
    assert sched.type == 'PolyLR' and sched.end == iters
    assert cfg.default_hooks.checkpoint.interval == iters
    assert cfg.model.to_dict() == cpu.model.to_dict()
    assert cfg.optim_wrapper.to_dict() == cpu.optim_wrapper.to_dict()
    assert cfg.branch.sweep.to_dict() == dict(mode='shared-bottom')
    assert cfg.branch.random_trees == 5
    with open(osp.join(FOLDER, 'metafile.yml')) as f:
        listed = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    assert listed[name]['Metadata']['Iterations'] == iters


def test_one_model_trains_two_iterations(tmp_path):
    cfg = single_task_config(Config.fromfile(CPU), 'depth')
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    for name, size in (('train_dataloader', 8), ('val_dataloader', 4),
                       ('test_dataloader', 4)):
        loader = cfg[name]
        loader.update(batch_size=4, num_workers=0, persistent_workers=False)
        loader.dataset.num_samples = size
    path = str(tmp_path / 'depth.py')
    cfg.dump(path)
    run_cfg = load_config(path, str(tmp_path / 'run'))
    run_cfg.experiment_name = f'dense_cpu_{time.time_ns()}'
    runner = train(run_cfg)
    assert osp.isfile(tmp_path / 'run' / 'iter_2.pth')
    assert runner.iter == 2
    # the depth output's bias steps 100x faster than the rest (the
    # config's reason: depth in metres from an output near 0)
    groups = runner.optim_wrapper.optimizer.param_groups
    bias = runner.model.head.task_heads['depth'].conv_seg.bias
    # (initial rates: PolyLR's eta_min is the same floor for every group)
    lrs = {id(p): g['initial_lr'] for g in groups for p in g['params']}
    others = {lr for pid, lr in lrs.items() if pid != id(bias)}
    assert len(others) == 1
    assert math.isclose(lrs[id(bias)], 100 * others.pop())
    # the probe split was scored with the depth metric
    scalars = (tmp_path / 'run').rglob('scalars.json')
    text = ''.join(p.read_text() for p in scalars)
    assert '"depth/rmse"' in text
    assert all(torch.isfinite(p).all()
               for p in runner.model.parameters())
