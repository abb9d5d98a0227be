import pytest
import torch

from branched_mtl.evaluation import MultiTaskMetric, delta_m


def test_delta_m_by_hand():
    # +10% on a, -5% on b (lower is better: 21 vs ref 20 is 5% worse)
    assert delta_m({'a': 55.0, 'b': 21.0}, {'a': 50.0, 'b': 20.0},
                   lower_is_better=['b']) == pytest.approx((10 - 5) / 2)
    with pytest.raises(KeyError, match="'c'"):
        delta_m({'a': 1.0}, {'c': 1.0})
    with pytest.raises(ValueError, match='is 0'):
        delta_m({'a': 1.0}, {'a': 0.0})


def sample(pred_a, gt_a, pred_b, gt_b):
    return {
        'a': dict(pred_score=torch.tensor(pred_a), gt_label=torch.tensor([gt_a])),
        'b': dict(pred_score=torch.tensor(pred_b), gt_label=torch.tensor([gt_b])),
    }


def test_metric_reports_every_task_and_delta_m():
    metric = MultiTaskMetric(
        task_metrics=dict(a=dict(type='mmpretrain.Accuracy'),
                          b=[dict(type='Accuracy')]),
        reference=dict(a=50.0, b=100.0))
    metric.process(None, [
        sample([0.9, 0.1], 0, [0.2, 0.8], 1),
        sample([0.9, 0.1], 1, [0.2, 0.8], 0),
        sample([0.1, 0.9], 1, [0.2, 0.8], 1),
        sample([0.1, 0.9], 1, [0.2, 0.8], 1),
    ])
    out = metric.evaluate(4)
    assert out['a/accuracy/top1'] == pytest.approx(75.0)
    assert out['b/accuracy/top1'] == pytest.approx(75.0)
    assert out['delta_m'] == pytest.approx(((75 - 50) / 50 - 0.25) / 2 * 100)
    # the selection score is Δm once references are known
    assert out['score'] == out['delta_m']


def test_score_without_reference_is_the_signed_mean_of_primaries():
    batch = [sample([0.9, 0.1], 0, [0.2, 0.8], 1),
             sample([0.9, 0.1], 1, [0.2, 0.8], 0)]
    metric = MultiTaskMetric(task_metrics=dict(a=dict(type='Accuracy')))
    metric.process(None, batch)
    out = metric.evaluate(2)
    # one task: its primary metric itself
    assert out['score'] == out['a/accuracy/top1'] == pytest.approx(50.0)
    metric = MultiTaskMetric(
        task_metrics=dict(a=dict(type='Accuracy'), b=dict(type='Accuracy')),
        lower_is_better=['b'])
    metric.process(None, batch)
    out = metric.evaluate(2)
    # b counts negated (lower is better): (50 - 50) / 2
    assert out['score'] == pytest.approx(0.0)
    assert 'delta_m' not in out


def test_unknown_reference_task():
    with pytest.raises(ValueError, match="unknown task"):
        MultiTaskMetric(task_metrics=dict(a=dict(type='Accuracy')),
                        reference=dict(z=1.0))


def test_dataset_meta_reaches_the_task_metrics():
    metric = MultiTaskMetric(task_metrics=dict(
        a=dict(type='mmpretrain.Accuracy'), b=dict(type='Accuracy')))
    metric.dataset_meta = dict(classes=('x', 'y'))
    for task in 'ab':
        assert metric._metrics[task][0].dataset_meta == dict(
            classes=('x', 'y'))


def test_multi_task_metrics_found_in_every_evaluator_form():
    from branched_mtl.evaluation.metrics.multi_task_metric import \
        multi_task_metrics
    a = dict(type='branched_mtl.MultiTaskMetric', task_metrics=dict(x=[]))
    b = dict(type='MultiTaskMetric', task_metrics=dict(y=[]))
    other = dict(type='mmpretrain.Accuracy')
    assert multi_task_metrics(a) == [a]
    assert multi_task_metrics([other, a, b]) == [a, b]
    assert multi_task_metrics(dict(type='Evaluator',
                                   metrics=[b, other])) == [b]
    assert multi_task_metrics(other) == []
    assert multi_task_metrics(None) == []
