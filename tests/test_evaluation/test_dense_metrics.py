import math

import numpy as np
import pytest
import torch

from branched_mtl.evaluation import (EdgeMetric, MultiTaskMetric,
                                     NormalMetric, OffsetMetric,
                                     TaskIoUMetric)


def px(*rows):
    """(C, 1, W) data dict from per-pixel channel rows."""
    return dict(data=torch.tensor(rows, dtype=torch.float32).T[:, None, :])


def test_normal_metric_angles():
    s = 1 / math.sqrt(2)
    sample = dict(
        # true normal (1, 0, 0); last pixel invalid (zero)
        gt_normal_map=px([1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0],
                         [0, 0, 0]),
        # errors: 0, 10, 45, 90 degrees (prediction not unit: normalised)
        pred_normal_map=px([2, 0, 0],
                           [math.cos(math.radians(10)),
                            math.sin(math.radians(10)), 0],
                           [s, s, 0], [0, 0, 1], [1, 0, 0]))
    metric = NormalMetric()
    metric.process({}, [sample])
    out = metric.compute_metrics(metric.results)
    assert out['mean'] == pytest.approx((0 + 10 + 45 + 90) / 4, abs=1e-3)
    # median of (0, 10, 45, 90): first angle reaching half the count
    assert out['median'] == pytest.approx(10, abs=0.01)
    assert out['within_11.25'] == pytest.approx(50.0)
    assert out['within_30'] == pytest.approx(50.0)
    assert out['rmse'] == pytest.approx(
        math.sqrt((100 + 45**2 + 90**2) / 4), abs=1e-3)


def test_edge_metric_f_measure():
    gt = dict(data=torch.tensor([[[1, 1, 0, 0, 255]]]))
    pred = dict(data=torch.tensor([[[0.9, 0.2, 0.8, 0.1, 0.9]]]))
    metric = EdgeMetric(thresholds=9)  # 0.1, 0.2, ..., 0.9
    metric.process({}, [dict(gt_edge_map=gt, pred_edge_map=pred)])
    out = metric.compute_metrics(metric.results)
    # t in (0.2, 0.8]: predicted {0, 2}: P = 1/2, R = 1/2, F = 1/2
    # t in (0.1, 0.2]: predicted {0, 1, 2}: P = 2/3, R = 1, F = 0.8 (best)
    # t <= 0.1: all 4 valid pixels: P = 1/2, R = 1, F = 2/3
    assert out['fmeasure'] == pytest.approx(80.0)
    assert out['precision'] == pytest.approx(200 / 3)
    assert out['recall'] == pytest.approx(100.0)
    assert out['threshold'] == pytest.approx(0.2)
    # with a 1-pixel tolerance pixel 2 matches the edge at pixel 1
    metric = EdgeMetric(thresholds=9, tolerance=1)
    metric.process({}, [dict(gt_edge_map=gt, pred_edge_map=pred)])
    assert metric.compute_metrics(metric.results)['fmeasure'] == \
        pytest.approx(100.0)


def test_offset_metric_mean_pixel_error():
    nan = float('nan')
    gt = px([3, 4], [0, 0], [nan, nan])
    pred = px([0, 0], [1, 0], [5, 5])
    metric = OffsetMetric()
    metric.process({}, [dict(gt_offset_map=gt, pred_offset_map=pred)])
    metric.process({}, [dict(gt_offset_map=px([0, 0]),
                             pred_offset_map=px([0, 2]))])
    # errors 5 and 1 on image 1, 2 on image 2: pooled over pixels
    assert metric.compute_metrics(metric.results)['mean_error'] == \
        pytest.approx(8 / 3)


def test_task_iou_metric_takes_classes_from_config():
    metric = TaskIoUMetric(num_classes=3, iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('other', ))  # config wins
    gt = dict(data=torch.tensor([[[0, 1, 2, 255]]]))
    pred = dict(data=torch.tensor([[[0, 1, 1, 2]]]))
    metric.process({}, [dict(gt_sem_seg=gt, pred_sem_seg=pred)])
    out = metric.compute_metrics(metric.results)
    # IoU: class 0 1, class 1 1/2, class 2 0
    assert out['mIoU'] == pytest.approx(50.0)


def test_dense_metrics_inside_multi_task_metric():
    metric = MultiTaskMetric(
        task_metrics=dict(
            semseg=dict(type='TaskIoUMetric', num_classes=2,
                        iou_metrics=['mIoU']),
            depth=dict(type='mmseg.DepthMetric'),
            normals=dict(type='NormalMetric'),
            instance=dict(type='OffsetMetric')),
        primary=dict(depth='rmse'),
        reference=dict(semseg=50.0, depth=1.0, normals=10.0, instance=2.0),
        lower_is_better=['depth', 'normals', 'instance'])
    sample = dict(
        semseg=dict(gt_sem_seg=dict(data=torch.tensor([[[0, 1]]])),
                    pred_sem_seg=dict(data=torch.tensor([[[0, 1]]]))),
        depth=dict(gt_depth_map=px([2.0], [4.0]),
                   pred_depth_map=px([2.0], [4.0])),
        normals=dict(gt_normal_map=px([0, 0, -1]),
                     pred_normal_map=px([0, 0, -1])),
        instance=dict(gt_offset_map=px([1, 1]),
                      pred_offset_map=px([1, 2])))
    metric.process({}, [sample])
    out = metric.evaluate(1)
    assert out['semseg/mIoU'] == pytest.approx(100.0)
    assert out['depth/rmse'] == pytest.approx(0.0)
    assert out['normals/mean'] == pytest.approx(0.0, abs=1e-3)
    assert out['instance/mean_error'] == pytest.approx(1.0)
    # (+100 % + 100 % + 100 % + 50 %) / 4
    assert out['delta_m'] == pytest.approx(87.5, abs=0.01)


def test_metrics_name_missing_fields():
    metric = NormalMetric()
    with pytest.raises(KeyError, match='pred_normal_map'):
        metric.process({}, [dict(gt_normal_map=px([1, 0, 0]))])
    with pytest.raises(ValueError, match='no valid pixel'):
        NormalMetric().compute_metrics([])
