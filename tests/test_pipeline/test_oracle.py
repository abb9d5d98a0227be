"""The oracle: every tree within a budget trained over the seeds; each
method's tree ranked among them, with its paired regret."""
import glob
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from branched_mtl.evaluation.paired_stats import mean_ci
from branched_mtl.pipeline.oracle import oracle_summary

from test_branch import ROOT, THREE, TINY  # noqa: I100  (tests/test_pipeline)

TASKS = ['a', 'b']
SHARED = [[['a', 'b']], [['a', 'b']]]
APART_LAST = [[['a', 'b']], [['a'], ['b']]]
APART = [[['a'], ['b']], [['a'], ['b']]]


def _model(a, b, branches=None):
    return dict(metrics={'a/accuracy': a, 'b/accuracy': b}, params=1,
                branches=branches)


def _single():
    """The single-task references: 50 % on both tasks."""
    return dict(status='done', models={
        'single_task/a': dict(metrics={'a/accuracy': 50.0}),
        'single_task/b': dict(metrics={'b/accuracy': 50.0})})


def _fake_job():
    cfg = Config(dict(test_evaluator=dict(
        type='branched_mtl.MultiTaskMetric', task_metrics={})))
    return SimpleNamespace(tasks=TASKS, cfg=cfg)


def test_rank_and_regret_on_fixed_numbers():
    # single-task references 50 / 50 on both seeds: Δm = mean relative gain
    single = _single()
    candidates = [SHARED, APART_LAST, APART]
    # Δm per seed: SHARED -10/-6, APART_LAST +4/+2, APART +2/+6 -> means
    # -8, +3, +4: APART is best, then APART_LAST, then SHARED
    trained = {0: [_model(45, 45), _model(52, 52), _model(51, 51)],
               1: [_model(47, 47), _model(51, 51), _model(53, 53)]}
    per_seed = {
        '0': dict(single_task=single,
                  all_shared=dict(status='done', models=dict(
                      all_shared=_model(45, 45, SHARED))),
                  m=dict(status='done', models=dict(
                      tree=_model(52, 52, [[['b', 'a']], [['b'], ['a']]])))),
        '1': dict(single_task=single,
                  all_shared=dict(status='done', models=dict(
                      all_shared=_model(47, 47, SHARED))),
                  m=dict(status='done', models=dict(
                      tree=_model(53, 53, APART)))),
    }
    out = oracle_summary(candidates, trained, per_seed,
                         ['single_task', 'all_shared', 'm'], _fake_job())
    assert out['best'] == 2
    assert [r['rank'] for r in out['candidates']] == [3, 2, 1]
    assert out['candidates'][1]['delta_m'] == {0: pytest.approx(4.0),
                                               1: pytest.approx(2.0)}
    m = out['methods']['m']
    # seed 0 chose APART_LAST (written in another task order), seed 1 APART
    assert [m['per_seed'][s]['candidate'] for s in (0, 1)] == [1, 2]
    assert [m['per_seed'][s]['rank'] for s in (0, 1)] == [2, 1]
    # paired regret: the best tree's Δm minus the chosen one's, same seed
    assert m['per_seed'][0]['regret'] == pytest.approx(2.0 - 4.0)
    assert m['per_seed'][1]['regret'] == pytest.approx(0.0)
    assert m['regret'] == mean_ci([-2.0, 0.0])
    assert m['best_chosen'] == 1 and m['mean_rank'] == pytest.approx(1.5)
    shared = out['methods']['all_shared']
    assert [shared['per_seed'][s]['rank'] for s in (0, 1)] == [3, 3]
    assert shared['per_seed'][0]['regret'] == pytest.approx(2.0 + 10.0)
    assert shared['per_seed'][1]['delta_m'] == pytest.approx(-6.0)


def test_a_tree_outside_the_candidates_has_no_rank():
    single = _single()
    per_seed = {'0': dict(single_task=single, m=dict(
        status='done', models=dict(tree=_model(50, 50, APART))))}
    out = oracle_summary([SHARED], {0: [_model(45, 45)]}, per_seed,
                         ['m'], _fake_job())
    pick = out['methods']['m']['per_seed'][0]
    assert pick['candidate'] is None and pick['rank'] is None
    assert out['methods']['m']['regret'] is None


def test_oracle_tool_end_to_end_and_resume(tmp_path):
    """Three tasks, 60 %: all-shared and the three ways of putting one task
    alone at the last block; the RSA tree and all-shared ranked among them.
    A second run retrains nothing."""
    cfg = tmp_path / 'three.py'
    cfg.write_text(TINY + THREE)
    work = str(tmp_path / 'oracle')
    argv = [sys.executable, osp.join(ROOT, 'tools', 'analysis', 'oracle.py'),
            str(cfg), '--work-dir', work, '--budget', '60%', '--seeds', '1',
            '--methods', 'all_shared,rsa']
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    doc = json.load(open(osp.join(work, 'oracle.json')))
    assert doc['num_candidates'] == 4
    ranks = [r['rank'] for r in doc['candidates']]
    assert min(ranks) == 1 and all(
        r == 1 + sum(o['mean'] > c['mean'] for o in doc['candidates'])
        for r, c in zip(ranks, doc['candidates']))
    for method in ('all_shared', 'rsa'):
        pick = doc['methods'][method]['per_seed']['0']
        assert pick['rank'] is not None, method
        best = doc['candidates'][doc['best']]['delta_m']['0']
        chosen = doc['candidates'][pick['candidate']]['delta_m']['0']
        assert pick['regret'] == pytest.approx(best - chosen)
    # the candidates the comparison trained (all-shared, the RSA tree) are
    # taken from it, not trained again; the others trained for the oracle
    rows = doc['candidates']
    shared = doc['methods']['all_shared']['per_seed']['0']
    rsa = doc['methods']['rsa']['per_seed']['0']
    assert rows[shared['candidate']]['trained_as']['0'] == 'all_shared'
    assert rows[shared['candidate']]['delta_m']['0'] == pytest.approx(
        shared['delta_m'])
    assert rows[rsa['candidate']]['trained_as']['0'] == 'rsa/tree'
    own = [r for r in rows if r['trained_as']['0'] == 'oracle']
    assert len(own) == 4 - len({shared['candidate'], rsa['candidate']})
    assert len(glob.glob(osp.join(work, 'seed_0', 'oracle', '*',
                                  'config.py'))) == len(own)
    assert 'Oracle: 4 trees within 60%' in open(
        osp.join(work, 'oracle.md')).read()
    with open(osp.join(work, 'oracle.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    again = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count('done earlier, skipped') >= 4
    assert json.load(open(osp.join(work, 'oracle.json'))) == doc


@pytest.mark.parametrize('options,prefix,message', [
    (['--budget', '90%', '--max-candidates', '5'], '--budget 90%',
     'more than --max-candidates 5'),
    (['--budget', '1GFLOPs'], "--budget '1GFLOPs'",
     'give a parameter budget'),
    (['--budget', '5%'], 'budget', 'below the all-shared network')])
def test_bad_budget_is_one_line(tmp_path, options, prefix, message):
    cfg = tmp_path / 'three.py'
    cfg.write_text(TINY + THREE)
    out = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'analysis', 'oracle.py'),
         str(cfg), '--work-dir', str(tmp_path / 'o')] + options,
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().startswith(f'oracle: error: {prefix}')
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_equal_trees_share_the_better_rank():
    single = _single()
    per_seed = {'0': dict(single_task=single, m=dict(
        status='done', models=dict(tree=_model(50, 50, APART))))}
    out = oracle_summary([SHARED, APART_LAST, APART],
                         {0: [_model(45, 45), _model(52, 52),
                              _model(52, 52)]},
                         per_seed, ['m'], _fake_job())
    assert [r['rank'] for r in out['candidates']] == [3, 1, 1]
    m = out['methods']['m']
    assert m['per_seed'][0]['rank'] == 1 and m['best_chosen'] == 1
    assert m['per_seed'][0]['regret'] == pytest.approx(0.0)
