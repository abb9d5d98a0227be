import pytest
import torch
from mmpretrain.structures import DataSample, MultiTaskDataSample

from branched_mtl.models import MultiTaskHead
from branched_mtl.registry import build_stock


def heads(**weights):
    return MultiTaskHead(
        task_heads=dict(
            a=dict(type='LinearClsHead', num_classes=3, in_channels=4),
            b=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                   in_channels=4)),
        loss_weights=weights or None)


def samples(labels):
    out = []
    for lab in labels:
        s = MultiTaskDataSample()
        for task, y in lab.items():
            s.set_field(DataSample().set_gt_label(y), task)
        out.append(s)
    return out


def feats(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {t: (torch.randn(n, 4, generator=g), ) for t in 'ab'}


def test_losses_named_by_task_and_weighted():
    head = heads()
    f, s = feats(4), samples([dict(a=0, b=1)] * 4)
    losses = head.loss(f, s)
    assert set(losses) == {'a.loss', 'b.loss'}
    weighted = heads(b=3.0)
    weighted.load_state_dict(head.state_dict())
    w = weighted.loss(f, s)
    torch.testing.assert_close(w['b.loss'], 3 * losses['b.loss'])
    torch.testing.assert_close(w['a.loss'], losses['a.loss'])


def test_samples_without_a_task_are_left_out():
    head = heads()
    f = feats(3)
    s = samples([dict(a=0, b=1), dict(a=2), dict(a=1, b=0)])
    loss_b = head.loss(f, s)['b.loss']
    only = {t: (v[0][[0, 2]], ) for t, v in f.items()}
    ref = head.loss(only, samples([dict(a=0, b=1), dict(a=1, b=0)]))
    torch.testing.assert_close(loss_b, ref['b.loss'])


def test_predict_fills_each_task():
    head = heads()
    out = head.predict(feats(2), samples([dict(a=0, b=1)] * 2))
    for s in out:
        assert s.a.pred_score.shape == (3, ) and s.b.pred_score.shape == (2, )
        assert int(s.a.gt_label) == 0  # ground truth kept for the metric


def test_names_do_not_clash_with_mmpretrain():
    ours = build_stock(dict(type='MultiTaskHead', task_heads=dict(
        a=dict(type='LinearClsHead', num_classes=3, in_channels=4))))
    assert type(ours) is MultiTaskHead
    # through build_stock, as our components build stock ones: nested builds
    # then resolve in mmpretrain whatever the current default scope
    theirs = build_stock(dict(type='mmpretrain.MultiTaskHead', task_heads=dict(
        a=dict(type='LinearClsHead', num_classes=3, in_channels=4))))
    assert type(theirs).__module__.startswith('mmpretrain')


def test_bad_config():
    with pytest.raises(ValueError, match="unknown task"):
        MultiTaskHead(task_heads=dict(
            a=dict(type='LinearClsHead', num_classes=3, in_channels=4)),
            loss_weights=dict(z=1.0))
    with pytest.raises(KeyError, match='NoSuchHead'):
        MultiTaskHead(task_heads=dict(a=dict(type='NoSuchHead')))


def test_init_weights_runs_every_task_heads_init_cfg():
    torch.manual_seed(0)
    head = MultiTaskHead(task_heads=dict(
        cls=dict(type='LinearClsHead', num_classes=200, in_channels=256),
        seg=dict(type='mmseg.PSPHead', in_channels=16, channels=256,
                 num_classes=200, in_index=-1, pool_scales=(1, 2))))
    head.init_weights()
    # LinearClsHead: Normal(std=0.01) on its Linear; PSPHead: Normal(std=
    # 0.01) on conv_seg. torch's defaults give about 0.036 here.
    fc = head.task_heads['cls'].fc.weight
    conv_seg = head.task_heads['seg'].conv_seg.weight
    assert abs(float(fc.std()) - 0.01) < 0.001
    assert abs(float(conv_seg.std()) - 0.01) < 0.001
    assert float(head.task_heads['cls'].fc.bias.abs().max()) == 0
