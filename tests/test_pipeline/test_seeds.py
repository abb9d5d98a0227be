"""The main job over seeds: mean +/- std, trees, repeatability."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest

from branched_mtl.affinity import save_affinity
from branched_mtl.pipeline import run_seeds, summarise_seeds

TASKS = ['a', 'b', 'c']
KEYS = {t: f'{t}/acc' for t in TASKS}
SHARED = [[TASKS], [TASKS]]
SPLIT = [[TASKS], [['a', 'b'], ['c']]]


def _row(model, values, delta, params, branches=None):
    return dict(model=model, delta_m=delta, params=params,
                branches=branches,
                metrics={KEYS[t]: v for t, v in zip(TASKS, values)})


def fake_job(tmp_path, seed, branched_delta, random_deltas, tree, aff):
    wd = tmp_path / f'seed_{seed}'
    path = wd / 'affinity' / 'affinity.json'
    save_affinity(str(path), TASKS, ['stem', 'layer1'], 'rsa', aff, {})
    rows = [_row('single-task (all)', [90, 80, 70], 0.0, 300),
            _row('branched', [91, 81, 71], branched_delta, 200, tree),
            _row('all_shared', [89, 79, 69], -1.0, 100, SHARED)]
    rows += [_row(f'random/{k}', [90, 80, 70], d, 200, SPLIT)
             for k, d in enumerate(random_deltas)]
    return SimpleNamespace(
        seed=seed, tasks=TASKS, work_dir=str(wd),
        summary=dict(rows=rows, keys=KEYS),
        results=dict(branched=dict(branches=tree)),
        folder=lambda *p, wd=wd: osp.join(str(wd), *p),
        info=dict(block_names=['stem', 'layer1']), config='cfg.py',
        affinity_method='rsa', alpha=None, budget=200,
        run=lambda: None)


def _aff(order):
    """A 2-block affinity whose pairs (ab, ac, bc) take values ``order``."""
    a = np.tile(np.eye(3), (2, 1, 1))
    for blk in range(2):
        (a[blk, 0, 1], a[blk, 0, 2], a[blk, 1, 2]) = order
    return a + np.triu(a, 1).transpose(0, 2, 1)


def test_summary_mean_std_trees_and_repeatability(tmp_path):
    jobs = [
        fake_job(tmp_path, 0, 2.0, [0.0, 1.0], SPLIT, _aff((0.9, 0.5, 0.1))),
        fake_job(tmp_path, 1, 4.0, [3.0, 7.0], SPLIT, _aff((0.9, 0.1, 0.5))),
    ]
    s = summarise_seeds(jobs)
    assert s['models']['branched']['delta_m'] == [2.0, 4.0]
    # each seed's random trees are averaged first
    assert s['models']['random (mean)']['delta_m'] == [0.5, 5.0]
    assert s['beats_random'] == [True, False]
    assert s['trees_agree'] is True
    # one of three pairs of task pairs swapped, at both splits
    assert s['repeatability']['mean'] == pytest.approx(2 / 3)
    assert s['repeatability']['per_block'] == pytest.approx([2 / 3] * 2)

    jobs[1].results['branched']['branches'] = SHARED
    assert summarise_seeds(jobs)['trees_agree'] is False


def test_run_seeds_writes_report_and_json(tmp_path):
    made = []

    def make_job(seed, work_dir):
        made.append((seed, work_dir))
        return fake_job(tmp_path, seed, 1.0 + seed, [0.0], SPLIT,
                        _aff((0.9, 0.5, 0.1 + 0.1 * seed)))

    lines = []
    run_seeds(make_job, str(tmp_path), [0, 1, 2], log=lines.append)
    assert [m[0] for m in made] == [0, 1, 2]
    assert made[2][1] == osp.join(str(tmp_path), 'seed_2')
    text = (tmp_path / 'report.md').read_text()
    # branched Δm 1, 2, 3: mean 2, sample std 1
    assert '2.00 ± 1.00' in text
    assert 'Same tree in every seed: **yes**' in text
    assert '100.0%' in text  # the order of the pairs never changed
    # pairs 0.9, 0.5 and 0.1..0.3 with one pair moving 0.1 per seed:
    # separated beyond the spread at both splits
    assert 'Every split separates its task pairs' in text
    assert 'WARNING' not in text
    assert (tmp_path / 'seeds.json').is_file()
    with pytest.raises(ValueError, match='distinct'):
        run_seeds(make_job, str(tmp_path), [1, 1])


def test_report_flags_an_affinity_that_does_not_separate(tmp_path):
    """Three seeds whose task pairs swap order as much as they differ:
    the report warns that the tree's groups are chosen by noise."""
    orders = [(0.05, 0.04, 0.03), (0.03, 0.05, 0.04), (0.04, 0.03, 0.05)]

    def make_job(seed, work_dir):
        return fake_job(tmp_path, seed, 1.0, [0.0], SPLIT,
                        _aff(orders[seed]))

    summary = run_seeds(make_job, str(tmp_path), [0, 1, 2],
                        log=lambda line: None)
    assert summary['separation']['flat'] == [0, 1]
    text = (tmp_path / 'report.md').read_text()
    assert 'WARNING: the affinity does not separate the task pairs' in text
    assert 'at stem, layer1' in text
