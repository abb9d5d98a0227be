"""tools/branch.py: the main job end to end, resume, invalidation, bad input."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from branched_mtl.pipeline import BranchJob
from branched_mtl.tree import parse_budget

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'configs', 'multidigits', 'branch_multidigits.py')
TINY = f"""
_base_ = [{BASE!r}]
iters = 4
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters, eta_min=1e-5)]
default_hooks = dict(logger=dict(interval=2),
                     checkpoint=dict(interval=iters))
# 56 training pairs: 24 held out as the probe split, 32 to train on
train_dataloader = dict(batch_size=8, dataset=dict(
    num_samples=24, dataset=dict(num_samples=56)))
val_dataloader = dict(dataset=dict(num_samples=24,
                                   dataset=dict(num_samples=56)))
test_dataloader = dict(dataset=dict(num_samples=24))
branch = dict(random_trees=1, probe=dict(dataset='val', num_samples=8))
"""
# three tasks keep the end-to-end run short
THREE = """
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
# (in one file a later assignment replaces an earlier one: sizes again)
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
"""


def write_config(tmp_path, extra=''):
    path = tmp_path / 'tiny.py'
    path.write_text(TINY + THREE + extra)
    return str(path)


class Stop(Exception):
    pass


class Recorder:
    """Collects the job's log lines; can stop the job after a stage."""

    def __init__(self, stop_after=None):
        self.lines = []
        self.stop_after = stop_after

    def __call__(self, line):
        if self.stop_after is not None and line.startswith(
                f'[branch] stage {self.stop_after + 1} of'):
            raise Stop(line)  # before the next stage starts any work
        self.lines.append(line)

    def ran(self):
        """Stages that did work (not skipped)."""
        stages, skipped = [], set()
        for line in self.lines:
            if line.startswith('[branch] stage'):
                # '[branch] stage k of N: NAME | elapsed ... | ...'
                stages.append(line.split(': ', 1)[1].split(' | ')[0])
            elif line.endswith('done earlier, skipped'):
                skipped.add(line.strip().split(':')[0])
        return [s for s in stages if s not in skipped]


def job(cfg, work_dir, log, **kwargs):
    kwargs.setdefault('budget', '70%')
    return BranchJob(cfg, str(work_dir), log=log, **kwargs)


def test_end_to_end_resume_at_every_boundary_and_invalidation(tmp_path,
                                                             capfd):
    cfg = write_config(tmp_path)
    wd = tmp_path / 'wd'
    names = job(cfg, wd, print).stages()
    assert names == ['single_task/left', 'single_task/left_parity',
                     'single_task/sum', 'affinity', 'tree', 'branched',
                     'all_shared', 'random/0', 'report']
    # stop at every stage boundary (a record is written last and atomically,
    # so this is what a kill between stages leaves); each rerun does exactly
    # the next stage and skips every finished one
    for k in range(1, len(names)):
        rec = Recorder(stop_after=k)
        with pytest.raises(Stop):
            job(cfg, wd, rec).run()
        assert rec.ran() == [names[k - 1]], (k, rec.lines)
    rec = Recorder()
    results = job(cfg, wd, rec).run()
    assert rec.ran() == ['report']
    # the console has the progress lines only: the training runs' log lines
    # and the tree tool's tables stay in the work dir
    out = capfd.readouterr().out
    assert 'Iter(train)' not in out and 'Iter(val)' not in out
    assert 'clustering' not in out
    assert 'Iter(train)' in open(glob.glob(osp.join(
        wd, 'single_task', 'sum', '2*', '2*.log'))[0]).read()
    assert 'clustering' in (wd / 'tree' / 'build_tree.txt').read_text()
    assert all(' | elapsed ' in line for line in rec.lines
               if line.startswith('[branch] stage'))
    times = json.loads((wd / 'stage_times.json').read_text())
    assert times['stages']['report']['skipped'] is False
    assert times['stages']['branched']['skipped'] is True

    report = (wd / 'report.md').read_text()
    for section in ('## Results', '## The chosen tree', '## Task affinity',
                    '## Parameters against Δm', 'single-task (all)',
                    'all_shared', 'random/0', 'Δm (%)', 'GFLOPs/img'):
        assert section in report, section
    assert '## Convergence (probe split)' in report
    for fig in ('fig_affinity_heatmaps.png', 'fig_affinity_vs_depth.png',
                'fig_tree.png', 'fig_params_vs_delta_m.png',
                'fig_probe_curves.png'):
        assert (wd / fig).stat().st_size > 1000
    affinity = json.loads((wd / 'affinity' / 'affinity.json').read_text())
    assert affinity['method'] == 'rsa' and len(affinity['affinity']) == 5
    # every model: the checkpoint the probe score chose, tested once
    for name, result in results.items():
        if name == 'report' or 'checkpoint' not in result:
            continue
        assert osp.basename(result['checkpoint']).startswith(
            'best_score_iter_'), name
        assert result['probe']['score'] == max(c[1] for c in result['curve'])
        assert len(glob.glob(osp.join(osp.dirname(result['config']), 'test',
                                      '2*'))) == 1, name
    # multi-task models are selected by Δm against the single-task models'
    # best probe values
    branched_cfg = Config.fromfile(results['branched']['config'])
    ref = branched_cfg.val_evaluator.reference
    for task in ('left', 'left_parity', 'sum'):
        st = results[f'single_task/{task}']['probe']
        assert ref[task] == st[f'{task}/accuracy/top1']
    assert branched_cfg.default_hooks.checkpoint.save_best == 'score'
    # the branched network trains the tree the tree stage chose
    assert results['branched']['branches'] == json.loads(
        (wd / 'stages' / 'tree.json').read_text())['result']['branches']
    # the random tree has the chosen tree's size
    assert [len(p) for p in results['random/0']['branches']] == [
        len(p) for p in results['branched']['branches']]

    # a changed tree setting reruns only what depends on the tree
    rec = Recorder()
    job(cfg, wd, rec, budget=None, alpha=1e6).run()
    assert rec.ran() == ['tree', 'branched', 'random/0', 'report']
    assert any('inputs changed' in line for line in rec.lines)
    # with alpha alone, the sizes every alpha reaches are reported, the
    # chosen tree among them (alpha 1e6: all-shared, the smallest)
    tree = json.loads((wd / 'stages' / 'tree.json').read_text())['result']
    sweep = tree['alpha_sweep']
    assert [r['chosen'] for r in sweep].count(True) == 1
    assert sweep[-1]['chosen'] and sweep[-1]['groups'] == [1] * 5
    params = [r['params'] for r in sweep]
    assert params == sorted(params, reverse=True) and len(sweep) >= 2
    report = (wd / 'report.md').read_text()
    assert '## The sizes alpha reaches' in report
    assert '**(chosen)**' in report

    # sizes and speed depend on the architecture alone: with the reference
    # models' checkpoints and configs gone (records copied from another
    # sitting), the report is still written, with the same sizes
    before = _report_sizes(report)
    for model in ('single_task/*', 'all_shared'):
        for name in ('*.pth', 'config.py'):
            for f in glob.glob(osp.join(wd, model, name)):
                os.remove(f)
    rec = Recorder()
    job(cfg, wd, rec, budget=None, alpha=1e6).run()
    # (random/0: all-shared has no other relabelling, nothing trains)
    assert rec.ran() == ['random/0', 'report']
    after = _report_sizes((wd / 'report.md').read_text())
    assert after == before and len(after) == 3, after


def _report_sizes(report):
    """model -> (params, GFLOPs) cells of the report's results table."""
    sizes = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if line.startswith('| ') and len(cells) > 4 and cells[0] in (
                'single-task (all)', 'branched', 'all_shared', 'random/0'):
            sizes[cells[0]] = (cells[-3], cells[-2])
    return sizes


def test_kill_9_during_training_resumes(tmp_path):
    cfg = write_config(tmp_path, '\niters = 30\ntrain_cfg = dict('
                       'max_iters=iters, val_interval=iters)\n'
                       'default_hooks = dict(checkpoint=dict(interval=5))\n'
                       'param_scheduler = [dict(type="CosineAnnealingLR", '
                       'by_epoch=False, begin=0, end=iters)]\n')
    wd = tmp_path / 'wd'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'branch.py'), cfg,
           '--work-dir', str(wd), '--budget', '70%', '--random-trees', '0']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    first = wd / 'single_task' / 'left'
    deadline = time.time() + 300
    while not glob.glob(str(first / 'iter_5.pth')):
        assert proc.poll() is None, 'job ended early'
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (wd / 'stages' / 'single_task__left.json').exists()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (wd / 'report.md').exists()
    logs = sorted(glob.glob(str(first / '*' / '*.log')))
    assert len(logs) == 2  # the killed run and the resumed one
    assert 'resumed' in open(logs[-1]).read().lower()


def test_bad_input_stops_before_training(tmp_path):
    one = tmp_path / 'one.py'
    one.write_text(TINY + """
tasks = ['left']
model = dict(encoder=dict(tasks=tasks), head=dict(task_heads=dict(
    _delete_=True, left=dict(type='mmpretrain.LinearClsHead',
                             num_classes=10, in_channels=128))))
""")
    with pytest.raises(ValueError, match='at least two tasks'):
        BranchJob(str(one), str(tmp_path / 'a'), alpha=1.0)
    unknown = tmp_path / 'unknown.py'
    unknown.write_text(TINY + THREE.replace("'sum']", "'colour']").replace(
        '        sum=dict(', '        colour=dict('))
    with pytest.raises(ValueError, match=r"\['colour'\] unknown"):
        BranchJob(str(unknown), str(tmp_path / 'b'), alpha=1.0)
    cfg = write_config(tmp_path)
    with pytest.raises(ValueError, match='below the all-shared'):
        BranchJob(cfg, str(tmp_path / 'c'), budget='1K')
    with pytest.raises(ValueError, match='alpha must be >= 0'):
        BranchJob(cfg, str(tmp_path / 'd'), alpha=-1.0)
    with pytest.raises(ValueError, match='give --alpha or --budget'):
        BranchJob(cfg, str(tmp_path / 'e'))
    # decisions must not read the test split
    same = tmp_path / 'same.py'
    same.write_text(TINY + THREE + 'val_dataloader = dict(_delete_=True, '
                    'batch_size=8, dataset=dict(type="MultiDigits", '
                    'split="test", num_samples=24, tasks=tasks))\n'
                    'test_dataloader = val_dataloader\n')
    with pytest.raises(ValueError, match='chosen on the test images'):
        BranchJob(str(same), str(tmp_path / 'f'), alpha=1.0)
    # the two parts of the probe split must be drawn alike
    skew = tmp_path / 'skew.py'
    skew.write_text(TINY + THREE + 'val_dataloader = dict(dataset=dict('
                    'seed=1))\n')
    with pytest.raises(ValueError, match='would overlap'):
        BranchJob(str(skew), str(tmp_path / 'g'), alpha=1.0)
    small = tmp_path / 'small.py'
    small.write_text(TINY + THREE + 'branch = dict(probe=dict('
                     'num_samples=100))\n')
    with pytest.raises(ValueError, match='probe split has 24 samples'):
        BranchJob(str(small), str(tmp_path / 'h'), alpha=1.0)
    for d in 'abcdefgh':
        assert not (tmp_path / d).exists()


def test_seeds_option(tmp_path, monkeypatch, capsys):
    tool = _load_branch_tool()
    cfg = write_config(tmp_path)
    assert tool.main([cfg, '--work-dir', str(tmp_path / 'x'), '--budget',
                      '70%', '--seeds', '0']) == 2
    assert '--seeds must be an int >= 1' in capsys.readouterr().err
    calls = []
    monkeypatch.setattr(tool, 'run_seeds', lambda make, wd, seeds: calls.append(
        (wd, seeds, [make(s, None).work_dir for s in seeds],
         [make(s, None).seed for s in seeds])))
    assert tool.main([cfg, '--work-dir', str(tmp_path / 'y'), '--budget',
                      '70%', '--seeds', '2', '--seed', '5']) == 0
    wd = str(tmp_path / 'y')
    assert calls == [(wd, [5, 6], [osp.join(wd, 'seed_5'),
                                   osp.join(wd, 'seed_6')], [5, 6])]
    # branch.seeds in the config is the default
    seeded = tmp_path / 'seeded.py'
    seeded.write_text(TINY + THREE + 'branch = dict(seeds=3, probe=dict('
                      'dataset="val", num_samples=8))\n')
    calls.clear()
    assert tool.main([str(seeded), '--work-dir', wd, '--budget', '70%']) == 0
    assert calls[0][1] == [0, 1, 2]


def _load_branch_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'branch_tool', osp.join(ROOT, 'tools', 'branch.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_budget():
    assert parse_budget('25M', 0) == 25_000_000
    assert parse_budget('300k', 0) == 300_000
    assert parse_budget('60%', 1000) == 600
    assert parse_budget(1234, 0) == 1234
    with pytest.raises(ValueError, match='like 25M'):
        parse_budget('lots', 0)
    with pytest.raises(ValueError, match='percentage needs'):
        parse_budget('60%')


def test_max_parallel_trains_side_by_side_same_results(tmp_path, monkeypatch):
    """``max_parallel=2`` with ``branch.precollate``: every model trains in
    its own process (its console log is there) on pre-collated batches, and
    the job's results are those of the models trained one after another in
    this process on the per-sample data path."""
    cfg = write_config(tmp_path)
    fast = tmp_path / 'fast.py'
    fast.write_text(TINY + THREE + 'branch = dict(precollate=True, '
                    'random_trees=1, probe=dict(dataset="val", '
                    'num_samples=8))\n')
    with pytest.raises(ValueError, match='max_parallel'):
        job(cfg, tmp_path / 'bad', print, max_parallel=0)
    bad = tmp_path / 'bad.py'
    bad.write_text(TINY + THREE + 'branch = dict(max_parallel="2", '
                   'probe=dict(dataset="val", num_samples=8))\n')
    with pytest.raises(ValueError, match='branch.max_parallel'):
        job(str(bad), tmp_path / 'bad', print)
    # one thread in both, so that the two paths compute alike
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = job(cfg, tmp_path / 'one', print).run()
        two = job(str(fast), tmp_path / 'two', print, max_parallel=2).run()
    finally:
        torch.set_num_threads(threads)
    models = [n for n in one if 'metrics' in one[n]]
    assert sorted(models) == sorted(n for n in two if 'metrics' in two[n])
    assert len(models) == 6  # 3 single-task, branched, all-shared, random
    for name in models:
        folder = osp.dirname(two[name]['config'])
        assert osp.isfile(osp.join(folder, 'console.log')), name
        assert 'PrecollatedDataset' in open(
            osp.join(folder, 'config.py')).read(), name
        assert not osp.isfile(osp.join(osp.dirname(one[name]['config']),
                                       'console.log')), name
        assert two[name]['metrics'] == one[name]['metrics'], name
        assert two[name]['curve'] == one[name]['curve'], name


def _stat(pid):
    """State and parent of ``pid`` (Linux /proc), or None once it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _running(pid):
    stat = _stat(pid)
    return stat is not None and stat[0] != 'Z'


def _children(pid):
    """Running pids whose parent is ``pid``."""
    return [int(e) for e in os.listdir('/proc') if e.isdigit()
            and _running(int(e)) and _stat(int(e))[1] == pid]


@pytest.mark.skipif(not osp.isdir('/proc'), reason='needs /proc')
def test_kill_9_with_max_parallel_stops_every_model_and_resumes(tmp_path):
    cfg = write_config(tmp_path, '\niters = 30\ntrain_cfg = dict('
                       'max_iters=iters, val_interval=iters)\n'
                       'default_hooks = dict(checkpoint=dict(interval=5))\n'
                       'param_scheduler = [dict(type="CosineAnnealingLR", '
                       'by_epoch=False, begin=0, end=iters)]\n')
    wd = tmp_path / 'wd'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'branch.py'), cfg,
           '--work-dir', str(wd), '--budget', '70%', '--random-trees', '0',
           '--max-parallel', '2']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not glob.glob(str(wd / 'single_task' / '*' / 'iter_5.pth')):
        assert proc.poll() is None, 'job ended early'
        assert time.time() < deadline
        time.sleep(0.05)
    children = _children(proc.pid)
    assert len(children) == 2  # two single-task models at once
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the models die with the job: none trains on beside a rerun
    deadline = time.time() + 30
    while any(_running(c) for c in children):
        assert time.time() < deadline, 'a model outlived its job'
        time.sleep(0.1)
    assert not list((wd / 'stages').glob('single_task__*.json'))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (wd / 'report.md').exists()
    resumed = [f for f in glob.glob(str(wd / 'single_task' / '*' / '*' /
                                        '*.log'))
               if 'resumed' in open(f).read().lower()]
    assert resumed  # a killed model went on from its checkpoint
