"""tools/branch.py end to end with modern encoders: a tiny ConvNeXt and a
tiny ViT (split points as the granularity) go through the single-task runs,
the affinity hooks (RSA on each block's features), the tree search, the
branched / all-shared / random runs and the report."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from branched_mtl.models import describe_blocks
from branched_mtl.pipeline import BranchJob
from conftest import slow  # noqa: I100  (tests/conftest.py)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'configs', 'multidigits', 'branch_multidigits.py')
# two binary tasks (a 4-iteration model scores above 0 on them, which the
# report's delta-m needs), 16 training images: seconds per run
TINY = f"""
_base_ = [{BASE!r}]
iters = 2
tasks = ['left_parity', 'right_parity']
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters, eta_min=1e-5)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=iters))
train_dataloader = dict(batch_size=8, dataset=dict(
    num_samples=16, dataset=dict(num_samples=32, tasks=tasks)))
val_dataloader = dict(dataset=dict(
    num_samples=16, dataset=dict(num_samples=32, tasks=tasks)))
test_dataloader = dict(dataset=dict(num_samples=16, tasks=tasks))
val_evaluator = dict(task_metrics=dict(
    _delete_=True, left_parity=dict(type='mmpretrain.Accuracy'),
    right_parity=dict(type='mmpretrain.Accuracy')))
test_evaluator = val_evaluator
branch = dict(random_trees=0, probe=dict(dataset='val', num_samples=16))
"""
ENCODERS = {
    'convnext': ("""dict(type='mmpretrain.ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
        out_indices=(3, ), gap_before_final_norm=False)""", 'stage', 64),
    'vit': ("""dict(type='mmpretrain.VisionTransformer',
        arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                  feedforward_channels=64),
        img_size=(32, 64), patch_size=8, out_type='featmap')""", [1], 32),
}


def write_config(tmp_path, name):
    backbone, granularity, channels = ENCODERS[name]
    text = TINY + f"""
model = dict(
    encoder=dict(tasks=tasks, granularity={granularity!r},
                 backbone=dict(_delete_=True, **{backbone})),
    head=dict(task_heads=dict(
        _delete_=True,
        left_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                         in_channels={channels}),
        right_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                          in_channels={channels}))))
"""
    path = tmp_path / f'{name}.py'
    path.write_text(text)
    return str(path)


# the vision transformer by default; ConvNeXt with BRANCHED_MTL_SLOW=1
@pytest.mark.parametrize('name', [pytest.param('convnext', marks=slow),
                                  'vit'])
def test_branch_job_with_modern_encoder(name, tmp_path):
    cfg_path = write_config(tmp_path, name)
    cfg = Config.fromfile(cfg_path)
    blocks = [b.name for b in describe_blocks(
        cfg.model.encoder.backbone, cfg.model.encoder.granularity)]
    assert blocks == ({'convnext': ['stem', 'stage0', 'stage1', 'stage2',
                                    'stage3'],
                       'vit': ['stem', 'layer0-1', 'layer2-3']}[name])
    wd = tmp_path / 'wd'
    BranchJob(cfg_path, str(wd), log=lambda line: None, budget='70%').run()
    # the affinity hooks compared the tasks at every block of the encoder
    affinity = json.loads((wd / 'affinity' / 'affinity.json').read_text())
    assert affinity['blocks'] == blocks
    assert len(affinity['affinity']) == len(blocks)
    for matrix in affinity['affinity']:
        assert [matrix[i][i] for i in range(2)] == [1.0, 1.0]
        assert -1 <= matrix[0][1] <= 1 and matrix[0][1] == matrix[1][0]
    # the tree has one partition per block, and its config builds it
    tree = json.loads((wd / 'stages' / 'tree.json').read_text())['result']
    assert len(tree['branches']) == len(blocks)
    branched = Config.fromfile(tree['config'])
    assert branched.model.encoder.granularity == \
        cfg.model.encoder.granularity
    report = (wd / 'report.md').read_text()
    assert '## The chosen tree' in report and 'all_shared' in report
