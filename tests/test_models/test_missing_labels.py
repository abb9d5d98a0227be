"""A head whose task the training data never labels is stopped, not left
untrained (the check for data sets that do not name their tasks)."""
import pytest
import torch
from mmpretrain.structures import DataSample, MultiTaskDataSample

from branched_mtl.models import MultiTaskHead


def head(**kwargs):
    return MultiTaskHead(task_heads=dict(
        a=dict(type='LinearClsHead', num_classes=3, in_channels=4),
        b=dict(type='LinearClsHead', num_classes=2, in_channels=4)),
        **kwargs)


def batch(tasks, n=4):
    out = []
    for _ in range(n):
        s = MultiTaskDataSample()
        for t in tasks:
            s.set_field(DataSample().set_gt_label(0), t)
        out.append(s)
    feats = {t: (torch.randn(n, 4), ) for t in 'ab'}
    return feats, out


def test_task_never_labelled_is_an_error():
    h = head(max_unlabelled_batches=3)
    for _ in range(2):
        assert set(h.loss(*batch('a'))) == {'a.loss'}
    with pytest.raises(ValueError, match=r"task 'b': none of the first 3 "
                       r'training batches had a label for it.*never be '
                       r'trained.*max_unlabelled_batches'):
        h.loss(*batch('a'))


def test_sparse_labels_are_fine_once_seen():
    h = head(max_unlabelled_batches=2)
    h.loss(*batch('ab'))  # b labelled once: its head trains
    for _ in range(5):
        h.loss(*batch('a'))
    # and the check can be turned off
    off = head(max_unlabelled_batches=0)
    for _ in range(5):
        off.loss(*batch('a'))
