"""Repeatability of the affinity: how alike two runs order the task pairs."""
import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from branched_mtl.affinity import order_agreement, repeatability
from branched_mtl.affinity.repeatability import cut_agreement, separation


def _sym(rng, n, blocks=2):
    a = rng.uniform(0, 1, (blocks, n, n))
    a = (a + a.transpose(0, 2, 1)) / 2
    for b in range(blocks):
        np.fill_diagonal(a[b], 0.7)
    return a


def test_identical_runs_agree_fully_and_reversed_not_at_all():
    a = _sym(np.random.default_rng(0), 4)
    assert np.allclose(order_agreement(a, a), 1.0)
    assert np.allclose(order_agreement(a, -a), 0.0)


def test_equals_kendall_tau_without_ties():
    rng = np.random.default_rng(1)
    a, b = _sym(rng, 5, blocks=3), _sym(rng, 5, blocks=3)
    got = order_agreement(a, b)
    iu = np.triu_indices(5, k=1)
    for blk in range(3):
        tau = kendalltau(a[blk][iu], b[blk][iu]).statistic
        assert got[blk] == pytest.approx((1 + tau) / 2)


def test_diagonal_is_ignored():
    rng = np.random.default_rng(2)
    a = _sym(rng, 4)
    b = a.copy()
    for blk in range(b.shape[0]):
        np.fill_diagonal(b[blk], rng.uniform(0, 1, 4))
    assert np.allclose(order_agreement(a, b), 1.0)


def test_by_hand_three_tasks():
    # pairs (0,1), (0,2), (1,2); run 1 orders them 0.9 > 0.5 > 0.1,
    # run 2 swaps the last two: 1 of the 3 pairs of pairs disagrees
    a = np.eye(3)[None].copy()
    b = np.eye(3)[None].copy()
    for m, (x, y, z) in ((a, (0.9, 0.5, 0.1)), (b, (0.9, 0.1, 0.5))):
        m[0, 0, 1] = m[0, 1, 0] = x
        m[0, 0, 2] = m[0, 2, 0] = y
        m[0, 1, 2] = m[0, 2, 1] = z
    assert order_agreement(a, b)[0] == pytest.approx(2 / 3)
    rep = repeatability([a, b, a])
    # pairs of runs: (a,b) 2/3, (a,a) 1, (b,a) 2/3
    assert rep['mean'] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert set(rep['per_pair']) == {'0-1', '0-2', '1-2'}


def test_bad_input():
    a = np.ones((1, 3, 3))
    with pytest.raises(ValueError, match='at least two runs'):
        repeatability([a])
    with pytest.raises(ValueError, match='cannot be compared'):
        order_agreement(a, np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match='at least 3 tasks'):
        order_agreement(np.ones((1, 2, 2)), np.ones((1, 2, 2)))


def _seeds(pair_values, noise, runs=5, seed=0):
    """(runs, L=1, 4, 4) symmetric affinities whose 6 task pairs have the
    given means plus Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    out = []
    rows, cols = np.triu_indices(4, k=1)
    for _ in range(runs):
        a = np.eye(4)
        v = np.asarray(pair_values) + rng.normal(0, noise, 6)
        a[rows, cols] = v
        a[cols, rows] = v
        out.append(a[None])
    return out


def test_separation_tells_signal_from_noise():
    # pairs 0.1 .. 0.6 apart, seeds agree within 0.01: separates
    clear = separation(_seeds(np.linspace(0.1, 0.6, 6), 0.01), ['layer4'])
    assert clear['separates_all'] and clear['flat'] == []
    split = clear['per_split'][0]
    assert split['range'] == pytest.approx(0.5, abs=0.03)
    assert split['spread'] == pytest.approx(0.01, rel=0.5)
    # the tournament of make demo: every pair near 0.03, seeds spread as
    # much as the pairs differ: flagged
    noise = separation(_seeds(np.full(6, 0.03), 0.02), ['layer4'])
    assert not noise['separates_all'] and noise['flat'] == [0]
    # the yardstick is the factor times the spread
    edge = separation(_seeds(np.linspace(0.1, 0.6, 6), 0.01), factor=100)
    assert edge['flat'] == [0]


def test_separation_refuses_what_it_cannot_judge():
    with pytest.raises(ValueError, match='at least two runs'):
        separation(_seeds(np.zeros(6), 0.0, runs=1))
    with pytest.raises(ValueError, match='2 split names for 1 splits'):
        separation(_seeds(np.zeros(6), 0.0), ['a', 'b'])


def _from_pairs(values_per_split):
    """(L, 4, 4) symmetric affinity with these 6 pair values per split."""
    out = []
    rows, cols = np.triu_indices(4, k=1)
    for values in values_per_split:
        a = np.full((4, 4), 0.9)
        a[rows, cols] = values
        a[cols, rows] = values
        out.append(a)
    return np.array(out)


def test_cut_agreement_against_the_full_runs_own_agreement():
    truth = np.array([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    # two full seeds that rank the pairs alike except one swap (rho 0.94)
    swapped = truth[[1, 0, 2, 3, 4, 5]]
    full = [_from_pairs([truth, truth]), _from_pairs([swapped, swapped])]
    # split 0: the cut ranks like the truth (rho 1 and 0.94: mean 0.97,
    # at least the full runs' 0.94): passes; split 1: the cut's order is
    # noise (reversed: rho -1, -0.94): fails
    cut = [_from_pairs([truth, truth[::-1]])]
    out = cut_agreement(cut, full, ['stem', 'layer1'])
    first, second = out['per_split']
    assert first['full_vs_full'] == pytest.approx(
        spearmanr(truth, swapped).statistic)
    assert first['cut_vs_full'] == pytest.approx(
        (1.0 + first['full_vs_full']) / 2)
    assert first['passes'] and not second['passes']
    assert second['cut_vs_full'] == pytest.approx(
        -(1.0 + first['full_vs_full']) / 2)
    assert out['failed'] == [1] and not out['passes_all']
    # a cut with every pair equal has no order: NaN, never a pass
    flat = cut_agreement([_from_pairs([np.full(6, 0.03)] * 2)], full)
    assert np.isnan(flat['per_split'][0]['cut_vs_full'])
    assert flat['failed'] == [0, 1]
    with pytest.raises(ValueError, match='two full runs'):
        cut_agreement(cut, full[:1])
    with pytest.raises(ValueError, match='different shapes'):
        cut_agreement([np.zeros((1, 4, 4))], full)
    with pytest.raises(ValueError, match='3 split names for 2 splits'):
        cut_agreement(cut, full, ['a', 'b', 'c'])
