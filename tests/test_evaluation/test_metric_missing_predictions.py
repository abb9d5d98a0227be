"""A task the evaluator scores but the model does not predict: a message
that names the task, not a KeyError from inside a stock metric."""
import pytest
import torch

from branched_mtl.evaluation import MultiTaskMetric


def test_missing_prediction_names_the_task():
    metric = MultiTaskMetric(task_metrics=dict(
        a=dict(type='mmpretrain.Accuracy'),
        b=dict(type='mmpretrain.Accuracy')))
    # b has ground truth but no prediction: the model has no head for it
    sample = {'a': dict(pred_score=torch.tensor([0.9, 0.1]),
                        gt_label=torch.tensor([0])),
              'b': dict(gt_label=torch.tensor([1]))}
    with pytest.raises(ValueError, match=r"task 'b' has no prediction "
                       r"'pred_label'.*does not predict 'b'.*task_metrics"):
        metric.process(None, [sample])
