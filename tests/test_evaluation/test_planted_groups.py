import math

import numpy as np
import pytest

from branched_mtl.evaluation.planted_groups import (affinity_agreement,
                                                    group_means,
                                                    planted_labels,
                                                    same_group,
                                                    tree_agreement,
                                                    within_across)

TASKS = ['a', 'b', 'c', 'd']
GROUPS = dict(g1=['a', 'b'], g2=['c', 'd'])


def pair_matrix(values):
    """Symmetric matrix from the pairs ab, ac, ad, bc, bd, cd."""
    m = np.eye(4)
    for (i, j), v in zip([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)],
                         values):
        m[i, j] = m[j, i] = v
    return m


def test_tree_agreement_per_block():
    branches = [
        [['a', 'b', 'c', 'd']],          # all shared: 0
        [['d', 'c'], ['b', 'a']],        # the planted groups: 1
        [['a', 'c'], ['b', 'd']],        # crossing them: -0.5
        [['a'], ['b'], ['c'], ['d']],    # separate: 0
    ]
    ari = tree_agreement(branches, GROUPS, ['stem', 'l1', 'l2', 'l3'])
    assert list(ari) == ['stem', 'l1', 'l2', 'l3']
    assert ari['stem'] == pytest.approx(0.0)
    assert ari['l1'] == pytest.approx(1.0)
    assert ari['l2'] == pytest.approx(-0.5)
    assert ari['l3'] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='block b1 partitions'):
        tree_agreement([[['a', 'b', 'c', 'd']], [['a', 'b', 'c']]], GROUPS,
                       ['b0', 'b1'])
    with pytest.raises(ValueError, match=r"tasks \['d'\] are in no planted"):
        tree_agreement([[['a', 'b', 'c', 'd']]], dict(g=['a', 'b', 'c']))


def test_affinity_agreement_auc_and_spearman():
    good = pair_matrix([0.9, 0.1, 0.2, 0.3, 0.4, 0.8])
    bad = pair_matrix([0.0, 0.9, 0.8, 0.7, 0.6, 0.1])
    tied = pair_matrix([0.5, 0.5, 0.1, 0.1, 0.1, 0.9])
    flat = pair_matrix([0.3] * 6)
    out = affinity_agreement(np.stack([good, bad, tied, flat]), TASKS,
                             GROUPS, ['s0', 's1', 's2', 's3'])
    assert out['s0']['auc'] == 1.0
    # ranks (6 1 2 3 4 5) against the indicator's (5.5 2.5 2.5 2.5 2.5 5.5)
    assert out['s0']['spearman'] == pytest.approx(12 / math.sqrt(210))
    assert out['s1']['auc'] == 0.0
    assert out['s1']['spearman'] == pytest.approx(-12 / math.sqrt(210))
    # 0.5 ties one across pair (half) and beats three; 0.9 beats all four
    assert out['s2']['auc'] == pytest.approx(7.5 / 8)
    assert out['s3']['auc'] == 0.5 and math.isnan(out['s3']['spearman'])
    # one matrix: one split
    assert list(affinity_agreement(good, TASKS, GROUPS)) == ['split0']


def test_affinity_agreement_bad_inputs():
    with pytest.raises(ValueError, match=r'got shape \(3, 3\)'):
        affinity_agreement(np.eye(3), TASKS, GROUPS)
    with pytest.raises(ValueError, match='no within-group pair'):
        affinity_agreement(np.eye(4), TASKS, dict(a=['a'], b=['b'], c=['c'],
                                                  d=['d']))
    with pytest.raises(ValueError, match='NaN'):
        affinity_agreement(np.full((4, 4), np.nan), TASKS, GROUPS)


def test_within_across_and_labels():
    assert planted_labels(['c', 'a', 'd'], GROUPS) == [1, 0, 1]
    assert same_group(TASKS, GROUPS).sum() == 8  # 4 diagonal + 2 pairs x 2
    m = pair_matrix([0.9, 0.1, 0.2, 0.3, 0.4, 0.8])
    out = within_across(np.stack([m, -m]), TASKS, GROUPS)
    assert out['within'] == pytest.approx([0.85, -0.85])
    assert out['across'] == pytest.approx([0.25, -0.25])

    means = group_means(m, TASKS, GROUPS)
    assert means.shape == (1, 2, 2)
    # g1: ab 0.9; g2: cd 0.8; across: ac ad bc bd
    assert means[0] == pytest.approx(np.array([[0.9, 0.25], [0.25, 0.8]]))
    single = group_means(m, TASKS, dict(g1=['a'], g2=['b', 'c', 'd']))
    assert np.isnan(single[0, 0, 0])
    assert single[0, 0, 1] == pytest.approx((0.9 + 0.1 + 0.2) / 3)
