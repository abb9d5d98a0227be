"""A comparison's trees and affinities scored against planted groups."""
import numpy as np
import pytest

from branched_mtl.affinity import save_affinity
from branched_mtl.pipeline.compare_planted import (planted_markdown,
                                                   planted_scores)

TASKS = ['a', 'b', 'c', 'd']
GROUPS = dict(one=['a', 'b'], two=['c', 'd'])
BLOCKS = ['stem', 'layer1']
PLANTED = [[TASKS], [['a', 'b'], ['c', 'd']]]
WRONG = [[TASKS], [['a', 'c'], ['b', 'd']]]


def test_trees_and_affinities_scored(tmp_path):
    # an affinity that ranks the planted pairs first at layer1 only
    aff = np.stack([np.full((4, 4), 0.5), np.array([
        [1, .9, .1, .2], [.9, 1, .2, .1], [.1, .2, 1, .8], [.2, .1, .8, 1]])])
    for i in range(2):
        np.fill_diagonal(aff[i], 1)
    path = tmp_path / 'rsa.json'
    save_affinity(str(path), TASKS, BLOCKS, 'rsa', aff, {})
    per_seed = {
        0: dict(rsa=dict(status='done', models=dict(tree=dict(
            branches=PLANTED))),
                # every method's trained tree is in models.tree
                tag_groups=dict(status='done', models=dict(tree=dict(
                    branches=WRONG)), search=dict(branches=WRONG)),
                adashare=dict(status='done', models={}),
                ltb=dict(status='failed', reason='x')),
        1: dict(rsa=dict(status='done', models=dict(tree=dict(
            branches=WRONG))))}
    scores = planted_scores(per_seed, GROUPS, BLOCKS,
                            lambda seed, method: str(path))
    rsa = scores['trees']['rsa']
    assert rsa['per_seed']['0']['layer1'] == pytest.approx(1.0)
    assert rsa['per_seed']['1']['layer1'] < 0
    assert rsa['per_seed']['0']['stem'] == pytest.approx(0.0)
    assert rsa['mean']['layer1'] == pytest.approx(
        (1.0 + rsa['per_seed']['1']['layer1']) / 2)
    # no tree, or failed: not scored
    assert set(scores['trees']) == {'rsa', 'tag_groups'}
    auc = scores['affinities']['rsa']['mean']
    assert auc['layer1']['auc'] == pytest.approx(1.0)
    assert auc['stem']['auc'] == pytest.approx(0.5)  # all ties
    text = planted_markdown(scores, dict(rsa='RSA tree'))
    assert '| RSA tree |' in text and 'one: a, b' in text


def test_affinities_of_different_splits_share_one_table(tmp_path):
    """A tournament under a budget measures the deep splits only: its row
    says so where RSA's has a value, and its value sits under its split."""
    full = np.stack([np.full((4, 4), 0.5), np.array([
        [1, .9, .1, .2], [.9, 1, .2, .1], [.1, .2, 1, .8], [.2, .1, .8, 1]])])
    for i in range(2):
        np.fill_diagonal(full[i], 1)
    paths = dict(rsa=tmp_path / 'rsa.json',
                 tournament=tmp_path / 'tournament.json')
    save_affinity(str(paths['rsa']), TASKS, BLOCKS, 'rsa', full, {})
    # the wrong pairs first: AUC 0 at layer1
    deep = 1.0 - full[1:]
    for block in deep:
        np.fill_diagonal(block, 1)
    save_affinity(str(paths['tournament']), TASKS, BLOCKS[1:], 'tournament',
                  deep, {})
    per_seed = {0: {m: dict(status='done', models=dict(tree=dict(
        branches=PLANTED))) for m in paths}}
    scores = planted_scores(per_seed, GROUPS, BLOCKS,
                            lambda seed, method: str(paths[method]))
    assert set(scores['affinities']['tournament']['mean']) == {'layer1'}
    text = planted_markdown(scores, {})
    assert '| affinity | stem | layer1 |' in text
    assert '| rsa | 0.50 | 1.00 |' in text
    assert '| tournament | not swept | 0.00 |' in text
