"""tools/analysis/compare_methods.py: every method end to end on a tiny
config, resume, a failing method recorded while the others are kept."""
import importlib.util
import json
import math
import os
import os.path as osp

import numpy as np
import pytest

from branched_mtl.pipeline.compare import Comparison, CostBook, known_methods
from branched_mtl.pipeline.compare_report import (comparison_markdown,
                                                  summarise)
from branched_mtl.tree import count_relabellings
from branched_mtl.utils import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'configs', 'multidigits', 'branch_multidigits.py')
TOOL = osp.join(ROOT, 'tools', 'analysis', 'compare_methods.py')
# three tasks, 4 iterations, 24 training pairs: every method in seconds;
# the projects' quickest search settings
TINY = f"""
_base_ = [{BASE!r}]
iters = 4
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters, eta_min=1e-5)]
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(interval=iters))
tasks = ['left', 'left_parity', 'sum']
model = dict(
    encoder=dict(tasks=tasks),
    head=dict(task_heads=dict(
        _delete_=True,
        left=dict(type='mmpretrain.LinearClsHead', num_classes=10,
                  in_channels=128),
        left_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                         in_channels=128),
        sum=dict(type='mmpretrain.LinearClsHead', num_classes=19,
                 in_channels=128))))
train_dataloader = dict(batch_size=8, dataset=dict(
    num_samples=24, dataset=dict(num_samples=56, tasks=tasks)))
val_dataloader = dict(dataset=dict(
    num_samples=24, dataset=dict(num_samples=56, tasks=tasks)))
test_dataloader = dict(dataset=dict(num_samples=24, tasks=tasks))
val_evaluator = dict(task_metrics=dict(
    _delete_=True, left=dict(type='mmpretrain.Accuracy'),
    left_parity=dict(type='mmpretrain.Accuracy'),
    sum=dict(type='mmpretrain.Accuracy')))
test_evaluator = val_evaluator
branch = dict(probe=dict(dataset='val', num_samples=8),
              sweep=dict(mode='shared-bottom', iters=2, data_fraction=0.25),
              tag=dict(iters=4, interval=2))
ltb = dict(num_nodes=2, iters=3, warmup_iters=1)
adashare = dict(warmup_iters=1, rounds=1, weight_iters=1, policy_iters=1)
# the projects register their methods (ltb, adashare) when imported
custom_imports = dict(imports=['projects.learning_to_branch.ltb',
                               'projects.adashare.adashare'],
                      allow_failed_imports=False)
"""


def _tool():
    spec = importlib.util.spec_from_file_location('compare_methods_tool',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoints(work_dir):
    """The trained models' checkpoints (not the searches' own)."""
    out = {}
    for folder, _, files in os.walk(work_dir):
        if f'{os.sep}search' in folder:
            continue
        for name in files:
            if name.endswith('.pth'):
                path = osp.join(folder, name)
                out[path] = os.stat(path).st_mtime_ns
    return out


def test_every_method_end_to_end_resume_and_failure(tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    config.write_text(TINY)
    work = tmp_path / 'cmp'
    tool = _tool()
    argv = [str(config), '--work-dir', str(work), '--budget', '60%',
            '--random-trees', '1']
    assert tool.main(argv) == 0
    doc = json.load(open(work / 'comparison.json'))
    seed = doc['per_seed']['0']
    failed = {m: r.get('reason') for m, r in seed.items()
              if r['status'] != 'done'}
    assert not failed, failed
    # every method: the projects' registered through custom_imports
    assert set(seed) == {'single_task', 'all_shared', 'rsa', 'tournament',
                         'tag', 'tag_groups', 'ltb', 'adashare'}
    assert set(seed) <= set(known_methods())

    rows = {r['label']: r for r in doc['rows']}
    for label in ('single-task', 'all-shared', 'RSA tree',
                  'tournament tree', 'TAG tree', 'Learning to Branch',
                  'AdaShare', 'random, size of RSA tree',
                  'random, size of tournament tree',
                  'random, size of TAG tree'):
        assert label in rows, sorted(rows)
    # random trees are relabellings of the tree: LTB's tree may have none
    # (all-shared or every task alone at every block)
    ltb_tree = seed['ltb']['search']['branches']
    relabel = count_relabellings(ltb_tree, ['left', 'left_parity', 'sum'])
    assert ('random, size of Learning to Branch' in rows) == (relabel > 1)
    assert doc['seeds'] == [0] and doc['budgets'] == ['60%']
    paired = doc['paired']
    assert set(paired) == {'all_shared', 'rsa', 'tournament', 'tag',
                           'tag_groups', 'ltb', 'adashare'}
    # TAG's own selection: the most separate networks within the budget
    # (one network of three tasks at 60 %: two would be 2/3 of the
    # single-task models)
    assert seed['tag_groups']['search']['networks'] == 1
    assert rows["TAG's own selection"]['stats']['params']['mean'] <= 0.6 * \
        rows['single-task']['stats']['params']['mean']
    assert paired['rsa']['random_trees'] == {'0': 1}
    assert 0 <= paired['rsa']['random_win_rate'] <= 1
    # one seed: a mean, no interval
    assert paired['rsa']['vs_all_shared']['low'] is None
    assert paired['rsa']['vs_all_shared']['per_seed'] == [pytest.approx(
        rows['RSA tree']['values']['delta_m'][0]
        - rows['all-shared']['values']['delta_m'][0])]
    keys = doc['keys']
    assert set(keys) == {'left', 'left_parity', 'sum'}
    single = rows['single-task']['stats']
    for label, row in rows.items():
        st = row['stats']
        for t in keys.values():
            assert 0 <= st[t]['mean'] <= 100
        assert st['params']['mean'] > 0 and st['flops']['mean'] > 0
        assert st['images_per_s']['mean'] > 0
        if label != 'single-task':
            # every multi-task network is smaller than the single-task
            # models together
            assert st['params']['mean'] < single['params']['mean']
    # Δm recomputed from the stored test metrics
    ref = {k: single[k]['mean'] for k in keys.values()}
    rsa = rows['RSA tree']['stats']
    expect = np.mean([(rsa[k]['mean'] - ref[k]) / ref[k] * 100
                      for k in keys.values()])
    assert math.isclose(rsa['delta_m']['mean'], expect, rel_tol=1e-6,
                        abs_tol=1e-9)
    # random trees have their tree's size; AdaShare is at most all-shared
    for name in ('RSA tree', 'tournament tree', 'TAG tree',
                 'Learning to Branch'):
        if f'random, size of {name}' not in rows:
            continue
        assert rows[f'random, size of {name}']['stats']['params'][
            'mean'] == rows[name]['stats']['params']['mean']
    assert rows['AdaShare']['stats']['params']['mean'] <= rows[
        'all-shared']['stats']['params']['mean']
    # search cost: the single-task models count for RSA and the
    # tournament, not for TAG; LTB and AdaShare their search
    parts = {label: rows[label]['cost']['0']['parts'] for label in (
        'RSA tree', 'tournament tree', 'TAG tree', 'Learning to Branch',
        'AdaShare')}
    assert 'single_task/left' in parts['RSA tree']
    assert 'single_task/left' in parts['tournament tree']
    assert 'tournament/affinity' in parts['tournament tree']
    assert not any(p.startswith('single_task') for p in parts['TAG tree'])
    assert parts['Learning to Branch'] == ['ltb/search']
    assert parts['AdaShare'] == ['adashare/search']
    for label in parts:
        cost = rows[label]['cost']['0']
        assert cost['wall_s'] > 0 and cost['cpu_s'] > 0 and \
            not cost['missing']
    stages = json.load(open(work / 'seed_0' / 'compare' / 'cost.json'))
    assert rows['RSA tree']['cost']['0']['wall_s'] > sum(
        stages[f'single_task/{t}']['wall_s'] for t in keys)
    md = (work / 'comparison.md').read_text()
    assert 'Learning to Branch' in md and 'AdaShare' in md
    assert (work / 'comparison.png').stat().st_size > 0
    # the single-task models trained once for every method
    assert sorted(os.listdir(work / 'seed_0' / 'single_task')) == sorted(
        keys)
    assert not osp.exists(work / 'seed_0' / 'rsa' / 'single_task')

    # a rerun trains nothing
    before = _checkpoints(work)
    capsys.readouterr()
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    assert _checkpoints(work) == before
    for label in ('RSA tree', 'Learning to Branch', 'AdaShare'):
        assert f'[compare] {label}: done earlier, skipped' in out

    # a broken LTB setting: LTB fails with its reason, the rest is kept
    assert tool.main(argv + ['--cfg-options', 'ltb.bogus=1']) == 0
    doc = json.load(open(work / 'comparison.json'))
    ltb = doc['per_seed']['0']['ltb']
    assert ltb['status'] == 'failed' and 'bogus' in ltb['reason']
    assert doc['per_seed']['0']['rsa']['status'] == 'done'
    assert 'Learning to Branch failed' in (work / 'comparison.md'
                                           ).read_text()
    assert _checkpoints(work) == before


def _record(values, params):
    """A method's record as the comparison stores it."""
    return dict(status='done', cost=None, models=dict(tree=dict(
        metrics={'a/acc': values[0], 'b/acc': values[1]}, params=params,
        flops=10.0, images_per_s=100.0)))


def test_summary_over_seeds(tmp_path):
    class Job:
        tasks = ['a', 'b']
        cfg = dict(test_evaluator={})

    def single(a, b):
        return dict(status='done', cost=None, models={
            'single_task/a': dict(metrics={'a/acc': a}, params=5,
                                  flops=2.0, images_per_s=10.0),
            'single_task/b': dict(metrics={'b/acc': b}, params=5,
                                  flops=2.0, images_per_s=10.0)})

    costs = CostBook(str(tmp_path))
    with costs.measure('rsa/tree'):
        sum(range(1000))
    cost = costs.total(['rsa/tree', 'rsa/affinity'])
    assert cost['missing'] == ['rsa/affinity'] and cost['wall_s'] > 0
    per_seed = {
        0: dict(single_task=single(50.0, 80.0),
                rsa=dict(_record([55.0, 80.0], 7), cost=cost)),
        1: dict(single_task=single(40.0, 80.0),
                rsa=dict(_record([40.0, 88.0], 7), cost=cost)),
        2: dict(single_task=single(40.0, 80.0),
                rsa=dict(status='failed', reason='boom')),
    }
    s = summarise(per_seed, ['single_task', 'rsa'], Job(), 0)
    rows = {r['label']: r for r in s['rows']}
    # Δm per seed against that seed's single-task models: +5 %, +5 %
    dm = rows['RSA tree']['stats']['delta_m']
    assert dm['mean'] == pytest.approx(5.0) and dm['std'] == 0.0
    assert dm['n'] == 2 and rows['RSA tree']['seeds'] == [0, 1]
    single = rows['single-task']['stats']
    # the single-task models side by side: sizes add, throughput combines
    assert single['params']['mean'] == 10
    assert single['images_per_s']['mean'] == pytest.approx(5.0)
    assert single['a/acc']['std'] == pytest.approx(np.std([50, 40, 40],
                                                          ddof=1))
    assert s['failed'] == {'rsa': {2: 'boom'}}
    md = comparison_markdown(dict(s, seeds=[0, 1, 2], budget='60%'),
                             'x.png')
    assert '| RSA tree | +5.00 ± 0.00 |' in md
    assert 'RSA tree failed** (seed 2): boom' in md
    assert 'rsa/affinity' in md  # the cost that was not measured


def test_bad_input_names_it(tmp_path):
    work = str(tmp_path / 'cmp')
    with pytest.raises(UserError, match=r"unknown method\(s\) \['ltbb'\]"):
        Comparison(BASE, work, [0], budget='60%', methods=['rsa', 'ltbb'])
    with pytest.raises(UserError, match='--budget'):
        Comparison(BASE, work, [0])
    with pytest.raises(UserError, match='distinct'):
        Comparison(BASE, work, [0, 0], budget='60%')
    with pytest.raises(UserError, match='not found'):
        Comparison(str(tmp_path / 'none.py'), work, [0], budget='60%')
    assert not osp.exists(work)  # nothing written before the checks


def test_random_trees_default_names_the_configs_own_count(tmp_path,
                                                         capsys):
    # the SyntheticScenes redo config asks tools/branch.py for 5; the
    # comparison uses its own default unless told, and says so
    config = osp.join(ROOT, 'configs', 'synthetic_scenes',
                      'branch_synthetic_scenes_cpu_1200it.py')
    args = ['--work-dir', str(tmp_path / 'w'), '--budget', '40%',
            '--methods', 'rsa,nosuch']
    assert _tool().main([config] + args) == 2  # stops at the bad method
    out = capsys.readouterr()
    assert ('10 random trees per tree (the default); the config\'s '
            'branch.random_trees=5' in out.out)
    assert 'nosuch' in out.err
    assert _tool().main([config] + args + ['--random-trees', '5']) == 2
    assert 'random trees per tree' not in capsys.readouterr().out
    # the config as this run reads it: --cfg-options included
    assert _tool().main([config] + args + [
        '--cfg-options', 'branch.random_trees=10']) == 2
    assert 'random trees per tree' not in capsys.readouterr().out
    assert not osp.exists(str(tmp_path / 'w'))


def test_budget_sweep_shares_references_and_affinity(tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    # planted groups named in the config: trees and affinities scored
    config.write_text(TINY + "groups = dict(left=['left', 'left_parity'], "
                      "sum=['sum'])\n")
    work = tmp_path / 'sweep'
    tool = _tool()
    argv = [str(config), '--work-dir', str(work), '--budgets', '40%,80%',
            '--methods', 'all_shared,rsa', '--random-trees', '1']
    assert tool.main(argv) == 0
    doc = json.load(open(work / 'comparison.json'))
    assert doc['budgets'] == ['40%', '80%'] and doc['seeds'] == [0]
    assert set(doc['by_budget']) == {'40%', '80%'}
    sizes = {}
    for budget, part in doc['by_budget'].items():
        rows = {r['label']: r for r in part['rows']}
        assert {'single-task', 'all-shared', 'RSA tree'} <= set(rows)
        sizes[budget] = rows['RSA tree']['stats']['params']['mean']
        assert set(part['paired']) == {'all_shared', 'rsa'}
        assert 'vs_all_shared' in part['paired']['rsa']
        ari = part['planted']['trees']['rsa']['per_seed']['0']
        assert set(ari) == {'stem', 'layer1', 'layer2', 'layer3', 'layer4'}
        assert all(-1 <= v <= 1 for v in ari.values())
        assert set(part['planted']['affinities']['rsa']['mean']) == set(ari)
    # a larger budget never gives a smaller tree
    assert sizes['40%'] <= sizes['80%']
    seed = work / 'seed_0'
    # the references and the affinity once per seed; trees per budget
    assert sorted(os.listdir(seed / 'single_task')) == ['left',
                                                        'left_parity', 'sum']
    assert (seed / 'rsa' / 'affinity' / 'affinity.json').is_file()
    for tag in ('budget_40pct', 'budget_80pct'):
        assert (seed / tag / 'rsa' / 'tree' / 'branched.py').is_file()
        assert not (seed / tag / 'rsa' / 'affinity').exists()
    md = (work / 'comparison.md').read_text()
    assert '## Budget `40%`' in md and '## Budget `80%`' in md
    assert 'Against the planted groups, budget `40%`' in md
    assert (work / 'comparison.png').stat().st_size > 0
    # resumed: nothing trains again
    before = _checkpoints(work)
    capsys.readouterr()
    assert tool.main(argv) == 0
    assert _checkpoints(work) == before
    assert capsys.readouterr().out.count('RSA tree: done earlier') == 2
    with pytest.raises(SystemExit):
        tool.parse_args([str(config), '--work-dir', str(work),
                         '--budgets', ','])
    assert tool.main([str(config), '--work-dir', str(work),
                      '--budgets', '40%,40%']) == 2


def test_tournament_at_a_tight_budget_sweeps_the_deep_splits(tmp_path,
                                                            capsys):
    """At 62 % of the tiny config only layer4 can branch: the tournament
    trains the recombined runs of split 5 alone (the shallow splits could
    not change the tree), its affinity names layer4 only, and the tree is
    searched, trained and scored against the planted groups."""
    config = tmp_path / 'tiny.py'
    config.write_text(TINY + "groups = dict(left=['left', 'left_parity'], "
                      "sum=['sum'])\n")
    work = tmp_path / 'tight'
    tool = _tool()
    argv = [str(config), '--work-dir', str(work), '--budget', '62%',
            '--methods', 'all_shared,tournament', '--random-trees', '1']
    assert tool.main(argv) == 0
    aff_dir = work / 'seed_0' / 'tournament' / 'affinity'
    jobs = sorted(os.listdir(aff_dir / 'sweep' / 'jobs'))
    assert jobs and all(j.endswith('__split5') for j in jobs), jobs
    doc = json.load(open(aff_dir / 'affinity.json'))
    assert doc['blocks'] == ['layer4']
    text = (work / 'seed_0' / 'tournament' / 'tree' /
            'build_tree.txt').read_text()
    assert 'unmeasured' in text
    part = json.load(open(work / 'comparison.json'))
    rows = {r['label']: r for r in part['rows']}
    assert rows['tournament tree']['stats']['params']['mean'] <= \
        0.62 * rows['single-task']['stats']['params']['mean'] + 1
    scores = part['planted']['affinities']['tournament']['per_seed']['0']
    assert set(scores) == {'layer4'}
    # the tiny config's sweep is cut (2 iterations on a quarter of the
    # data): its report says the affinity is a preview
    report = (work / 'seed_0' / 'tournament' / 'report.md').read_text()
    assert '> The recombined runs were shortened (2 of the schedule' in report
    assert 'preview' in report
    # resumed: nothing trains or sweeps again
    before = _checkpoints(work)
    assert tool.main(argv) == 0
    assert _checkpoints(work) == before
    assert sorted(os.listdir(aff_dir / 'sweep' / 'jobs')) == jobs


def test_max_parallel_trains_trees_side_by_side(tmp_path, monkeypatch):
    """``--cfg-options branch.max_parallel=2``: a method's tree and its
    random trees train in their own processes, with the results of one
    after another in this process."""
    config = tmp_path / 'tiny.py'
    config.write_text(TINY)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tool = _tool()
    argv = [str(config), '--budget', '60%', '--methods', 'rsa',
            '--random-trees', '2']
    try:
        assert tool.main(argv + ['--work-dir', str(tmp_path / 'one')]) == 0
        assert tool.main(argv + ['--work-dir', str(tmp_path / 'two'),
                                 '--cfg-options',
                                 'branch.max_parallel=2']) == 0
    finally:
        torch.set_num_threads(threads)
    docs = [json.load(open(tmp_path / d / 'comparison.json'))
            for d in ('one', 'two')]
    one, two = (doc['per_seed']['0']['rsa'] for doc in docs)
    assert set(one['models']) == {'tree', 'random/0', 'random/1'}
    for name, model in one['models'].items():
        # the same numbers (paths and measured throughput aside)
        for key in ('metrics', 'branches', 'params', 'flops'):
            assert two['models'][name][key] == model[key], (name, key)
        # each trained in a process of its own in the second comparison
        assert osp.isfile(osp.join(osp.dirname(two['models'][name]['config']),
                                   'console.log')), name
        assert not osp.isfile(osp.join(osp.dirname(model['config']),
                                       'console.log')), name
    # the seed's shared models are trained (and recorded) by the seed's
    # job alone: the method's job never trains them again beside it
    for task in ('left', 'left_parity', 'sum'):
        assert not (tmp_path / 'two' / 'seed_0' / 'single_task' / task /
                    'console.log').exists(), task
    assert not (tmp_path / 'two' / 'seed_0' / 'all_shared' /
                'console.log').exists()
