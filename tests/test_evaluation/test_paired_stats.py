import numpy as np
import pytest
from scipy import stats

from branched_mtl.evaluation.paired_stats import (mean_ci, median_per_seed,
                                                  paired_difference, verdict,
                                                  win_rate)

VALUES = [1.3, -0.2, 2.9, 0.8, 1.1, 0.4, 1.7]


def test_interval_is_scipys_bootstrap_of_the_mean():
    ci = mean_ci(VALUES, seed=3)
    ref = stats.bootstrap((np.array(VALUES), ), np.mean,
                          confidence_level=0.95, n_resamples=9999,
                          method='BCa',
                          random_state=np.random.default_rng(3))
    assert ci['low'] == pytest.approx(ref.confidence_interval.low)
    assert ci['high'] == pytest.approx(ref.confidence_interval.high)
    assert ci['mean'] == pytest.approx(np.mean(VALUES))
    assert ci['std'] == pytest.approx(np.std(VALUES, ddof=1))
    assert ci['low'] < ci['mean'] < ci['high']
    # a 99 % interval is wider
    wide = mean_ci(VALUES, confidence=0.99, seed=3)
    assert wide['low'] < ci['low'] and wide['high'] > ci['high']


def test_no_interval_from_one_value_and_a_point_from_equal_values():
    assert mean_ci([2.0]) == dict(mean=2.0, low=None, high=None, n=1,
                                  std=0.0)
    assert mean_ci([]).get('n') == 0
    point = mean_ci([1.5, 1.5, 1.5])
    assert point['low'] == point['high'] == 1.5
    with pytest.raises(ValueError, match='finite'):
        mean_ci([1.0, float('nan')])
    with pytest.raises(ValueError, match='confidence'):
        mean_ci(VALUES, confidence=1.5)


def test_paired_difference_pairs_by_seed():
    method = {0: 5.0, 1: 6.0, 2: 7.0, 3: 9.0, 9: 100.0}
    ref = {0: 4.0, 1: 5.5, 2: 6.0, 3: 8.0, 4: -50.0}
    d = paired_difference(method, ref)
    assert d['seeds'] == [0, 1, 2, 3]
    assert d['per_seed'] == [1.0, 0.5, 1.0, 1.0]
    assert d['mean'] == pytest.approx(0.875)
    assert d['beyond_interval'] == 1
    # swapped, the verdict flips
    assert paired_difference(ref, method)['beyond_interval'] == -1
    # unpaired means would mislead: the paired verdict does not depend on
    # the seed-to-seed spread that both share
    noisy = {s: v + 10 * s for s, v in method.items()}
    noisy_ref = {s: v + 10 * s for s, v in ref.items()}
    assert paired_difference(noisy, noisy_ref)['per_seed'] == d['per_seed']


def test_verdict_and_win_rate():
    assert verdict(dict(low=-1.0, high=2.0)) == 0
    assert verdict(dict(low=None, high=None)) == 0
    assert verdict(dict(low=-3.0, high=-1.0)) == -1
    rate = win_rate({0: 2.0, 1: 1.0}, {0: [1.0, 3.0, 2.0], 1: [0.0],
                                       2: [9.0]})
    # seed 0: win, loss, tie; seed 1: win; seed 2 unpaired
    assert rate == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert win_rate({0: 1.0}, {1: [2.0]}) is None
    assert median_per_seed({0: [1.0, 5.0, 2.0], 1: []}) == {0: 2.0}
