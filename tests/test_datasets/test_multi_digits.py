import numpy as np
import pytest

from branched_mtl.datasets import MultiDigits


def test_deterministic_and_labelled_consistently():
    a = MultiDigits(split='val', num_samples=20, seed=3)
    b = MultiDigits(split='val', num_samples=20, seed=3)
    c = MultiDigits(split='val', num_samples=20, seed=4)
    assert np.array_equal(a[5]['img'], b[5]['img'])
    assert not np.array_equal(a[5]['img'], c[5]['img'])
    from sklearn.datasets import load_digits
    target = load_digits().target
    for i in range(20):
        info = a[i]
        left, right = (int(target[s]) for s in info['source_digits'])
        assert info['gt_label'] == dict(
            left=left, right=right, left_parity=left % 2,
            right_parity=right % 2, sum=left + right)
        assert info['img'].shape == (32, 64, 3)
        assert info['img'].dtype == np.uint8


def test_splits_use_disjoint_digits():
    pools = [set(MultiDigits.source_indices(s, seed=0).tolist())
             for s in ('train', 'val', 'test')]
    assert not pools[0] & pools[1] and not pools[0] & pools[2] \
        and not pools[1] & pools[2]
    assert sum(map(len, pools)) == 1797
    ds = MultiDigits(split='test', num_samples=50)
    used = {s for i in range(50) for s in ds[i]['source_digits']}
    assert used <= pools[2]


def test_task_subset_and_bad_input():
    ds = MultiDigits(split='train', num_samples=4, tasks=['sum'])
    assert set(ds[0]['gt_label']) == {'sum'}
    with pytest.raises(ValueError, match="unknown task"):
        MultiDigits(tasks=['colour'])
    with pytest.raises(ValueError, match='split must be one of'):
        MultiDigits(split='dev')
    with pytest.raises(ValueError, match='num_samples'):
        MultiDigits(num_samples=0)


def test_pairs_rendered_once_per_process_and_never_shared_mutably():
    from branched_mtl.datasets.multi_digits import _render_pairs
    _render_pairs.cache_clear()
    a = MultiDigits(split='val', num_samples=40, seed=5)
    b = MultiDigits(split='val', num_samples=40, seed=5)
    info = _render_pairs.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    # the same pairs as rendering anew ...
    fresh = MultiDigits.render('val', 40, tuple(a.tasks), 5, 0.1, 24)
    assert all(np.array_equal(a.get_data_info(i)['img'], fresh[i]['img'])
               for i in range(40))
    # ... and what one dataset hands out cannot change the other's
    a.get_data_info(3)['img'][:] = 0
    assert b.get_data_info(3)['img'].any()
    assert len(MultiDigits(split='val', num_samples=41, seed=5)) == 41
