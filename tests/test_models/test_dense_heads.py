import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from branched_mtl.datasets import SyntheticScenes
from branched_mtl.registry import MODELS, build_stock

TASKS = ['semseg', 'depth', 'normals']


def tiny_model(tasks=TASKS, heads=None):
    norm = dict(type='BN')
    common = dict(in_channels=64, channels=8, pool_scales=(1, 2),
                  dropout_ratio=0.0, norm_cfg=norm)
    heads = heads or dict(
        semseg=dict(type='mmseg.PSPHead', num_classes=5, **common),
        depth=dict(type='PSPDepthHead', **common),
        normals=dict(type='PSPNormalHead', **common),
        edges=dict(type='FCNEdgeHead', in_channels=64, channels=8,
                   num_convs=1, dropout_ratio=0.0),
        instance=dict(type='FCNOffsetHead', in_channels=64, channels=8,
                      num_convs=1, dropout_ratio=0.0))
    return MODELS.build(dict(
        type='BranchedMultiTaskModel',
        data_preprocessor=dict(type='branched_mtl.DenseDataPreprocessor', mean=[128] * 3,
                               std=[64] * 3, pad_size_divisor=8),
        encoder=dict(
            type='BranchedEncoder',
            backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=8,
                          base_channels=8, out_indices=(3, ),
                          dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                          norm_cfg=norm),
            tasks=tasks),
        head=dict(type='MultiTaskHead',
                  task_heads={t: heads[t] for t in tasks})))


def batch(tasks, n=4, size=(32, 64), flip=False):
    pipeline = ([dict(type='DenseRandomFlip', prob=1.0)] if flip else []) + [
        dict(type='PackDenseTaskInputs', num_classes=dict(semseg=5))]
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = SyntheticScenes(num_samples=n, img_size=size, tasks=tasks,
                             max_objects=3, pipeline=pipeline)
    return pseudo_collate([ds[i] for i in range(n)])


def test_heads_are_stock_heads_with_task_defaults():
    from mmseg.models.decode_heads import FCNHead, PSPHead
    head = build_stock(dict(type='PSPOffsetHead', in_channels=4, channels=4))
    assert isinstance(head, PSPHead) and head.out_channels == 2
    assert type(head.loss_decode).__name__ == 'OffsetLoss'
    head = build_stock(dict(type='FCNDepthHead', in_channels=4, channels=4,
                            loss_decode=dict(type='DepthLoss',
                                             criterion='mse')))
    assert isinstance(head, FCNHead) and head.loss_decode.criterion == 'mse'
    with pytest.raises(ValueError, match='predicts 3'):
        build_stock(dict(type='PSPNormalHead', in_channels=4, channels=4,
                         num_classes=5))


def test_head_loss_reads_its_field_and_names_bad_samples():
    head = build_stock(dict(type='FCNDepthHead', in_channels=4, channels=4,
                            num_convs=1, dropout_ratio=0.0))
    sample = SegDataSample(metainfo=dict(img_path='a.png'))
    sample.gt_depth_map = PixelData(data=torch.ones(1, 8, 8))
    losses = head.loss((torch.randn(1, 4, 4, 4), ), [sample], None)
    assert set(losses) == {'loss_depth'}
    bad = SegDataSample(metainfo=dict(img_path='b.png'))
    bad.gt_depth_map = PixelData(data=torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match='b.png'):
        head.loss((torch.randn(1, 4, 4, 4), ), [bad], None)
    with pytest.raises(KeyError, match='gt_depth_map'):
        head.loss((torch.randn(1, 4, 4, 4), ), [SegDataSample()], None)


def test_predict_fills_every_task_sample_at_image_size():
    tasks = ['semseg', 'depth', 'normals', 'edges', 'instance']
    model = tiny_model(tasks).eval()
    data = batch(tasks, n=2, size=(28, 60))  # padded to 32x64
    with torch.no_grad():
        out = model.val_step(data)
    s = out[0]
    assert s.semseg.pred_sem_seg.shape == (28, 60)
    assert s.depth.pred_depth_map.data.min() > 0
    norms = s.normals.pred_normal_map.data.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    edges = s.edges.pred_edge_map.data
    assert edges.shape == (1, 28, 60) and 0 <= edges.min() <= edges.max() <= 1
    assert s.instance.pred_offset_map.shape == (28, 60)


def test_training_lowers_every_task_loss():
    torch.manual_seed(0)
    model = tiny_model()
    data = batch(TASKS, n=4, flip=True)
    # start depth at the data's mean depth (metres), as one would with a
    # real data set, so a few steps show learning rather than offset
    with torch.no_grad():
        depth = torch.stack([s.depth.gt_depth_map.data
                             for s in data['data_samples']])
        model.head.task_heads['depth'].conv_seg.bias.fill_(depth.mean())
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    keys = ['semseg.loss_ce', 'depth.loss_depth', 'normals.loss_normal']
    history = []
    for _ in range(12):
        processed = model.data_preprocessor(data, True)
        losses = model(**processed, mode='loss')
        history.append({k: losses[k].item() for k in keys})
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        optim.step()
    for k in keys:
        first = sum(h[k] for h in history[:3]) / 3
        last = sum(h[k] for h in history[-3:]) / 3
        assert last < 0.9 * first, (k, first, last)
