"""A comparison's affinities: do they separate the task pairs beyond the
seeds' spread?"""
import numpy as np

from branched_mtl.affinity import save_affinity
from branched_mtl.pipeline.compare_affinity import (separation_markdown,
                                                    separation_scores)

TASKS = ['a', 'b', 'c']


def _aff(ab, ac, bc):
    a = np.eye(3)
    a[0, 1] = a[1, 0] = ab
    a[0, 2] = a[2, 0] = ac
    a[1, 2] = a[2, 1] = bc
    return np.stack([a, a])


def test_separated_and_flat_affinities(tmp_path):
    files = {
        # seeds agree on the order: separates
        ('rsa', 0): _aff(0.9, 0.5, 0.1), ('rsa', 1): _aff(0.88, 0.52, 0.1),
        # pairs swap from seed to seed: flat
        ('tournament', 0): _aff(0.05, 0.04, 0.03),
        ('tournament', 1): _aff(0.03, 0.05, 0.04),
        # one seed only: not judged
        ('tag', 0): _aff(0.9, 0.5, 0.1)}
    for (method, seed), aff in files.items():
        order = TASKS if seed == 0 else ['c', 'a', 'b']
        idx = [TASKS.index(t) for t in order]
        # the second seed's file lists the tasks in another order
        save_affinity(str(tmp_path / f'{method}_{seed}.json'), order,
                      ['stem', 'layer1'], 'rsa', aff[:, idx][:, :, idx], {})
    scores = separation_scores(
        ['rsa', 'tournament', 'tag'], [0, 1],
        lambda seed, m: str(tmp_path / f'{m}_{seed}.json'))
    assert set(scores) == {'rsa', 'tournament'}
    assert scores['rsa']['separates_all'] and scores['rsa']['seeds'] == [0, 1]
    assert scores['tournament']['flat'] == [0, 1]
    text = separation_markdown(scores, dict(rsa='RSA tree'))
    assert '| RSA tree |' in text and '**flat**' in text
    assert 'tournament at stem, layer1' in text


def test_an_affinity_of_the_deep_splits_only(tmp_path):
    """A tournament under a budget measures layer1 only: its cell sits
    under layer1, and stem says it was not swept."""
    for seed, aff in enumerate((_aff(0.9, 0.5, 0.1), _aff(0.88, 0.52, 0.1))):
        save_affinity(str(tmp_path / f'rsa_{seed}.json'), TASKS,
                      ['stem', 'layer1'], 'rsa', aff, {})
        # a flat deep split: the pairs swap between the seeds
        deep = _aff(*((0.05, 0.04, 0.03), (0.03, 0.05, 0.04))[seed])[1:]
        save_affinity(str(tmp_path / f'tournament_{seed}.json'), TASKS,
                      ['layer1'], 'tournament', deep, {})
    scores = separation_scores(
        ['rsa', 'tournament'], [0, 1],
        lambda seed, m: str(tmp_path / f'{m}_{seed}.json'))
    text = separation_markdown(scores, {})
    row = next(line for line in text.splitlines()
               if line.startswith('| tournament |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1] == 'not swept' and cells[2].endswith('**flat**')
    assert 'tournament at layer1' in text
