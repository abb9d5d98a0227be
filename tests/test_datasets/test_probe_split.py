"""ProbeSplit: a fixed held-out part of the training set, disjoint from the
part the models train on."""
import numpy as np
import pytest

from branched_mtl.datasets import MultiDigits, ProbeSplit, probe_indices
from branched_mtl.registry import DATASETS, build_stock

SOURCE = dict(type='branched_mtl.MultiDigits', split='train', num_samples=40,
              tasks=['left', 'sum'])


def _parts(num_samples=10, seed=0, **kwargs):
    train = ProbeSplit(dict(SOURCE), part='train', num_samples=num_samples,
                       seed=seed, **kwargs)
    probe = ProbeSplit(dict(SOURCE), part='probe', num_samples=num_samples,
                       seed=seed)
    return train, probe


def test_parts_are_complements_and_deterministic():
    train, probe = _parts()
    assert len(probe) == 10 and len(train) == 30
    assert set(train.source_indices).isdisjoint(probe.source_indices)
    assert sorted(train.source_indices + probe.source_indices) == list(
        range(40))
    again = ProbeSplit(dict(SOURCE), part='probe', num_samples=10, seed=0)
    assert again.source_indices == probe.source_indices
    other = ProbeSplit(dict(SOURCE), part='probe', num_samples=10, seed=1)
    assert other.source_indices != probe.source_indices


def test_samples_are_the_source_samples():
    _, probe = _parts()
    whole = MultiDigits(split='train', num_samples=40, tasks=['left', 'sum'])
    for k, src in enumerate(probe.source_indices):
        mine, theirs = probe.get_data_info(k), whole.get_data_info(src)
        assert np.array_equal(mine['img'], theirs['img'])
        assert mine['gt_label'] == theirs['gt_label']
    assert probe.metainfo['tasks'] == ('left', 'sum')


def test_built_from_config_and_subset():
    cfg = dict(type='branched_mtl.ProbeSplit', part='train', num_samples=10,
               indices=5, dataset=dict(SOURCE))
    part = build_stock(cfg, DATASETS)
    full, _ = _parts()
    assert part.source_indices == full.source_indices[:5]
    picked = ProbeSplit(dict(SOURCE), part='train', num_samples=10,
                        indices=[0, 2])
    assert picked.source_indices == [full.source_indices[0],
                                     full.source_indices[2]]


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_samples=40), 'leaves no training samples'),
    (dict(num_samples=0), 'num_samples must be an int >= 1'),
    (dict(part='val'), "part must be one of"),
    (dict(indices=[99]), r'indices \[99\] out of range'),
])
def test_bad_settings_name_the_fault(kwargs, match):
    args = dict(part='train', num_samples=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ProbeSplit(dict(SOURCE), **args)


def test_probe_indices_sorted_unique():
    idx = probe_indices(100, 30, seed=3)
    assert idx == sorted(set(idx)) and len(idx) == 30
    assert all(0 <= i < 100 for i in idx)
