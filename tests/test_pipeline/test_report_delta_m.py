"""Δm where a single-task metric is 0: explained in the report, and refused
before the multi-task models are trained and selected by it."""
import math
import os.path as osp

import pytest

from branched_mtl.pipeline import BranchJob
from branched_mtl.pipeline import report

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = ['a', 'b']
KEYS = {'a': 'a/accuracy/top1', 'b': 'b/accuracy/top1'}


def row(model, a, b, delta):
    return dict(model=model, metrics={KEYS['a']: a, KEYS['b']: b},
                delta_m=delta, params=1e6, flops=1e9, images_per_s=100.0,
                branches=None)


def test_zero_reference_gives_n_a_and_a_reason():
    reference = {KEYS['a']: 50.0, KEYS['b']: 0.0}
    branched = {KEYS['a']: 55.0, KEYS['b']: 10.0}
    delta = report._delta_m(branched, reference, [])
    assert math.isnan(delta)
    rows = [row('single-task (all)', 50.0, 0.0, 0.0),
            row('branched', 55.0, 10.0, delta)]
    table = report._table(rows, KEYS, TASKS)
    assert 'nan' not in table
    assert '| n/a |' in table
    notes = report.delta_m_notes(rows, KEYS, TASKS)
    assert len(notes) == 1
    assert ('the single-task model of `b` scored 0 on `b/accuracy/top1`'
            in notes[0]) and 'divides by' in notes[0]
    assert report.delta_m_notes([row('single-task (all)', 5.0, 6.0, 0.0)],
                                KEYS, TASKS) == []


def test_zero_probe_reference_stops_before_multi_task_training(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'report_branch_tests', osp.join(ROOT, 'tests', 'test_pipeline',
                                        'test_branch.py'))
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(tests.TINY + tests.THREE)
    job = BranchJob(str(cfg), str(tmp_path / 'wd'), budget='70%',
                    log=lambda s: None)
    for task, value in (('left', 40.0), ('left_parity', 60.0), ('sum', 0.0)):
        job.results[f'single_task/{task}'] = dict(
            probe={f'{task}/accuracy/top1': value, 'score': value})
    with pytest.raises(ValueError, match=r"single-task model\(s\) of 'sum' "
                       r'scored 0 on accuracy/top1 on the probe split.*'
                       r'Train longer'):
        job.select_multi_task(job.cfg)
