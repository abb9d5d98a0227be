"""tools/sweep_recombination.py: plans, failures, kill -9 and resume, a real
sweep (one job per pair == shared bottom), multi-target probe collection."""
import argparse
import glob
import importlib.util
import io
import json
import multiprocessing
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import (MULTIDIGITS, ROOT, one_thread_after_fork, slow,
                      tiny_options)
from mmengine.config import Config, DictAction

from branched_mtl.affinity import collect_tournament, load_affinity
from branched_mtl.apis import single_task_config
from branched_mtl.apis.sweep import (load_plan_config, plan_sweep, run_jobs,
                                     run_sweep, write_jobs)
from branched_mtl.registry import build_stock

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
TOOL = osp.join(ROOT, 'tools', 'sweep_recombination.py')

# Stands in for tools/dist_train.sh: writes a probe like AffinityHook would,
# logs its arguments, can wait for a file (FAKE_HOLD) or fail (FAKE_FAIL).
FAKE_TRAIN = r'''
import json, os, runpy, sys, time
import numpy as np
cfg_path, args = sys.argv[1], sys.argv[2:]
wd = args[args.index('--work-dir') + 1]
name = os.path.basename(wd)
with open(os.path.join(wd, 'fake_runs.log'), 'a') as f:
    f.write(' '.join(args) + ' PORT=' + os.environ['PORT'] + '\n')
open(os.path.join(wd, 'last_checkpoint'), 'w').write('iter_1.pth')
hold = os.environ.get('FAKE_HOLD')
while hold and not os.path.exists(hold):
    time.sleep(0.05)
if name in os.environ.get('FAKE_FAIL', '').split(','):
    sys.exit('fake failure')
cfg = runpy.run_path(cfg_path)
hook = [h for h in cfg['custom_hooks'] if h['type'] == 'AffinityHook'][0]
tasks = cfg['model']['encoder']['tasks']
rec = hook.get('recombination')
k = hook['num_samples']
rows = []
for t in tasks:
    src = rec['source'] if rec else t
    seed = sum(map(ord, t + src)) + (rec['split'] if rec else 0)
    rng = np.random.default_rng(seed)
    rows.append(1.0 + (t != src) * rng.random(k) + 0.01 * rng.random(k))
probe = os.path.join(wd, 'affinity_probe')
os.makedirs(probe, exist_ok=True)
np.save(os.path.join(probe, 'losses.npy'), np.array(rows, np.float32))
json.dump(dict(tasks=tasks, splits=['stem', 'layer1', 'layer2', 'layer3',
                                    'layer4'],
               sample_indices=list(range(k)), recombination=rec),
          open(os.path.join(probe, 'meta.json'), 'w'))
'''


@pytest.fixture
def fake_launcher(tmp_path):
    py = tmp_path / 'fake_train.py'
    py.write_text(FAKE_TRAIN)
    sh = tmp_path / 'fake_dist_train.sh'
    sh.write_text(f'#!/usr/bin/env bash\nexec "$PYTHON" {py} "$@"\n')
    return str(sh)


def env(**extra):
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    e.update(extra)
    return e


def tiny_cfg_options(work_dir='unused'):
    return tiny_options(work_dir, iters=2, ckpt_interval=2, samples=16)


def tiny_cfg():
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return load_plan_config(
        CFG, parser.parse_args(['--o'] + tiny_cfg_options()).o)


def single_task_runs(root, tasks, holder=None):
    """Single-task work dirs with (random) checkpoints; ``holder`` maps a
    task to the task whose model its folder holds (to test mismatches)."""
    cfg = Config.fromfile(CFG)
    for i, task in enumerate(tasks):
        held = (holder or {}).get(task, task)
        model = build_stock(single_task_config(cfg, held).model)
        torch.manual_seed(i)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        os.makedirs(osp.join(root, task), exist_ok=True)
        path = osp.join(root, task, 'iter_2.pth')
        torch.save(dict(state_dict=model.state_dict(), meta={}), path)
        with open(osp.join(root, task, 'last_checkpoint'), 'w') as f:
            f.write(path)
    return str(root)


def load_tool():
    spec = importlib.util.spec_from_file_location('sweep_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def attempts(job_dir):
    path = osp.join(job_dir, 'attempts.log')
    lines = open(path).read().split('\n') if osp.exists(path) else []
    return (sum(ln.startswith('start') for ln in lines),
            sum(ln.startswith('done') for ln in lines))


def all_jobs(work_dir):
    return sorted(glob.glob(osp.join(work_dir, 'jobs', '*')) +
                  glob.glob(osp.join(work_dir, 'single_task', '*')))


# ----------------------------------------------------------------- planning

def test_dry_run_lists_n_n_l_jobs(tmp_path, capsys):
    tool = load_tool()
    assert tool.main([CFG, '--work-dir', str(tmp_path), '--dry-run']) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith('  stage')]
    assert len(lines) == 5 + 5 * 5 * 5  # N single-task + N x N x L
    assert sum('stage 1' in ln for ln in lines) == 125
    assert '  left_parity__from_sum__split3  ' in out
    assert not os.listdir(tmp_path)  # a dry run writes nothing

    plan = plan_sweep(Config.fromfile(CFG), str(tmp_path),
                      tasks='left,sum,right', splits='1,layer3',
                      mode='shared-bottom')
    assert plan.splits == [1, 4]
    assert [j.name for j in plan.stage(1)][:3] == [
        'shared__from_left__split1', 'shared__from_sum__split1',
        'shared__from_right__split1']
    assert len(plan.stage(1)) == 3 * 2
    job = plan.stage(1)[0]
    assert set(job.needs) == {'single_task/left', 'single_task/sum',
                              'single_task/right'}


def test_slurm_scripts(tmp_path, capsys):
    tool = load_tool()
    work = tmp_path / 'w'
    assert tool.main([CFG, '--work-dir', str(work), '--tasks', 'left,sum',
                      '--splits', '2', '--launcher', 'slurm', '--partition',
                      'gpu', '--gpus-per-job', '2', '--max-parallel',
                      '3', '--exec', 'per-job']) == 0
    assert 'submit with: bash' in capsys.readouterr().out
    stage0 = (work / 'slurm' / 'stage0.sbatch').read_text()
    stage1 = (work / 'slurm' / 'stage1.sbatch').read_text()
    assert '#SBATCH --array=0-1%3' in stage0
    assert '#SBATCH --array=0-3%3' in stage1
    assert '#SBATCH --ntasks=2' in stage1 and '--partition=gpu' in stage1
    assert str(work / 'jobs' / 'sum__from_left__split2') in stage1
    submit = (work / 'slurm' / 'submit.sh').read_text()
    assert submit.index('stage0.sbatch') < submit.index('stage1.sbatch') \
        < submit.index('collect.sbatch')
    assert 'afterok' in submit
    run = (work / 'jobs' / 'sum__from_left__split2' / 'run.sh').read_text()
    assert 'srun' in run and '--launcher=slurm' in run
    assert 'done.json' in run


def test_slurm_in_process_workers(tmp_path, capsys):
    """In-process mode: one array task per worker (not per job), each an
    srun of tools/sweep_worker.py on the stage's queue."""
    tool = load_tool()
    work = tmp_path / 'w'
    assert tool.main([CFG, '--work-dir', str(work), '--tasks', 'left,sum',
                      '--splits', '2', '--launcher', 'slurm', '--partition',
                      'gpu', '--gpus-per-job', '2', '--max-parallel',
                      '3']) == 0
    stage0 = (work / 'slurm' / 'stage0.sbatch').read_text()
    stage1 = (work / 'slurm' / 'stage1.sbatch').read_text()
    assert '#SBATCH --array=0-1\n' in stage0  # 2 jobs: 2 workers, not 3
    assert '#SBATCH --array=0-2\n' in stage1  # 4 jobs, 3 workers
    assert '#SBATCH --ntasks=2' in stage1
    queue = work / 'workers' / 'queue.json'
    for stage, text in ((0, stage0), (1, stage1)):
        assert 'sweep_worker.py' in text and str(queue) in text
        assert f'--stage {stage} --launcher=slurm' in text
    jobs = json.loads(queue.read_text())['jobs']
    assert len(jobs) == 2 + 4
    assert {j['name'] for j in jobs if j['stage'] == 1} == {
        f'{t}__from_{s}__split2' for t in ('left', 'sum')
        for s in ('left', 'sum')}


def test_bad_inputs(tmp_path, capsys):
    tool = load_tool()
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'],
                          holder=dict(sum='left'))
    base = [CFG, '--work-dir', str(tmp_path / 'w'), '--dry-run']

    def error(*args):
        assert tool.main(base + list(args)) == 2
        return capsys.readouterr().err

    assert "unknown task(s) ['depth']" in error('--tasks', 'left,depth')
    err = error('--tasks', 'left,right', '--single-task-dir', st)
    assert "single-task run of 'right'" in err
    assert osp.join(st, 'right') in err
    # the folder of 'sum' holds the model of 'left'
    err = error('--tasks', 'left,sum', '--single-task-dir', st)
    assert "expected the single-task model of 'sum'" in err
    assert 'split' in error('--splits', '0')
    assert 'split' in error('--splits', 'layer9')
    assert 'at least 2 tasks' in error('--tasks', 'left')


# ------------------------------------------------------- failures, kill -9

def test_failed_job_is_listed_others_complete(tmp_path, fake_launcher):
    work = str(tmp_path / 'sweep')
    plan = plan_sweep(tiny_cfg(), work, tasks='left,right', splits='2',
                      probe_samples=6)
    out = io.StringIO()
    rc = run_sweep(plan, dist_train=fake_launcher, max_parallel=2,
                   env=env(FAKE_FAIL='right'), out=out, exec_mode='per-job')
    text = out.getvalue()
    assert rc == 1, text
    # the single-task run of 'right' failed, and with it every job that
    # needs it; the job that needs 'left' only went on
    assert 'single_task/right: exit code 1' in text
    assert osp.join(work, 'single_task', 'right', 'train.log') in text
    for name in ('right__from_right__split2', 'left__from_right__split2',
                 'right__from_left__split2'):
        assert f'{name}: needs failed job(s)' in text
    assert osp.isfile(osp.join(work, 'jobs', 'left__from_left__split2',
                               'done.json'))
    assert not osp.exists(osp.join(work, 'affinity_tournament.json'))

    # the same command again retries only what failed
    out = io.StringIO()
    rc = run_sweep(plan_sweep(tiny_cfg(), work, tasks='left,right',
                              splits='2', probe_samples=6),
                   dist_train=fake_launcher, max_parallel=2, env=env(),
                   out=out, exec_mode='per-job')
    assert rc == 0, out.getvalue()
    assert attempts(osp.join(work, 'jobs', 'left__from_left__split2')) == \
        (1, 1)
    assert attempts(osp.join(work, 'single_task', 'right')) == (2, 1)
    aff = load_affinity(osp.join(work, 'affinity_tournament.json'))
    assert aff['tasks'] == ['left', 'right'] and aff['blocks'] == ['layer1']


def wait_for(cond, what, timeout=120):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


def _sweep_process(argv, log, environ):
    """Body of a forked sweep: its own session, all output to ``log``."""
    one_thread_after_fork()
    os.setsid()
    os.environ.clear()
    os.environ.update(environ)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    # the OS-level fds too: nothing may hold pytest's output pipe
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(1, 'w', buffering=1, closefd=False)
    code = 1
    try:
        code = load_tool().main(argv)
    finally:
        sys.stdout.flush()
        os._exit(code)


def read(path):
    return open(path).read() if osp.exists(path) else ''


def _cleanup(work, procs, holds):
    """Whatever a failed test left running: release and stop it."""
    for hold in holds:
        open(hold, 'a').close()
    for proc in procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    for d in all_jobs(work):
        for line in read(osp.join(d, 'attempts.log')).splitlines():
            if 'pid=' not in line:
                continue
            pid = int(line.split('pid=')[-1])
            try:  # only a job of this test (pids get reused)
                if work in open(f'/proc/{pid}/cmdline').read():
                    os.killpg(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def test_resume_after_kill(tmp_path, fake_launcher):
    """kill -9 of the sweep alone (its jobs go on as orphans), then of the
    sweep and its running jobs: nothing lost, nothing done twice."""
    work = str(tmp_path / 'sweep')
    hold1, hold2 = str(tmp_path / 'hold1'), str(tmp_path / 'hold2')
    argv = [CFG, '--work-dir', work, '--tasks', 'left,right', '--splits',
            '1,2', '--max-parallel', '2', '--probe-samples', '6',
            '--dist-train', fake_launcher, '--exec', 'per-job',
            '--cfg-options',
            *tiny_cfg_options()]
    # forked from this process, which has imported everything already:
    # a sweep process that starts in no time, and can be killed with -9
    ctx = multiprocessing.get_context('fork')
    procs = []

    def start(hold, log, *extra):
        proc = ctx.Process(target=_sweep_process,
                           args=(argv + list(extra), log,
                                 env(FAKE_HOLD=hold)))
        proc.start()
        procs.append(proc)
        return proc

    def started():
        # running jobs whose training has begun
        return [d for d in all_jobs(work) if attempts(d)[0] > attempts(d)[1]
                and osp.exists(osp.join(d, 'last_checkpoint'))]

    try:
        # 1: both single-task jobs start and wait; kill -9 the sweep only
        sweep = start(hold1, str(tmp_path / 'sweep1.log'))
        wait_for(lambda: len(started()) == 2, 'two running jobs')
        orphans = started()
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.join()

        # 2: a new sweep waits for the orphans instead of running them
        # again, then runs stage 1 jobs; kill -9 it and its jobs (a crash)
        log2 = str(tmp_path / 'sweep2.log')
        sweep = start(hold2, log2)
        wait_for(lambda: '[sweep] [' in read(log2), 'the second sweep')
        # it counts the orphans as running, and waits
        assert '0/10 done, 2 running' in read(log2), read(log2)
        open(hold1, 'w').close()  # the orphans finish
        wait_for(lambda: all(osp.isfile(osp.join(d, 'done.json'))
                             for d in orphans), 'orphans to finish')
        wait_for(lambda: len([d for d in started() if '/jobs/' in d]) == 2,
                 'two stage 1 jobs running')
        crashed = [d for d in started() if '/jobs/' in d]
        for d in crashed:
            pid = int(read(osp.join(d, 'attempts.log')).split('pid=')[-1])
            os.killpg(pid, signal.SIGKILL)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.join()

        # 3: the same command completes the sweep, resuming crashed jobs
        log3 = str(tmp_path / 'sweep3.log')
        sweep = start('', log3, '--resume')
        sweep.join(300)
        assert sweep.exitcode == 0, read(log3)[-3000:]
    finally:
        _cleanup(work, procs, [hold1, hold2])

    jobs = all_jobs(work)
    assert len(jobs) == 2 + 2 * 2 * 2
    for d in jobs:
        starts, dones = attempts(d)
        assert dones == 1, d  # nothing lost, nothing finished twice
        runs = read(osp.join(d, 'fake_runs.log')).splitlines()
        assert len(runs) == starts, d
        if d in orphans:
            assert starts == 1, d  # the second sweep did not rerun them
        elif d in crashed:
            assert starts == 2, d
            assert '--resume' in runs[1] and '--resume' not in runs[0]
        else:
            assert starts == 1, d
            assert '--resume' not in runs[0]
    ports = {r.split('PORT=')[1] for d in jobs
             for r in read(osp.join(d, 'fake_runs.log')).splitlines()}
    assert len(ports) > 1
    aff = load_affinity(osp.join(work, 'affinity_tournament.json'))
    assert aff['affinity'].shape == (2, 2, 2)


# --------------------------------------------------------------- real runs

@slow
def test_real_sweep_per_pair_equals_shared_bottom(tmp_path):
    """Real training (tools/train.py): the shared-bottom sweep, collected,
    and the per-pair jobs of one source give the same probe losses."""
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    plans = {
        mode: plan_sweep(tiny_cfg(), str(tmp_path / mode), tasks='left,sum',
                         splits='3', mode=mode, single_task_dir=st, iters=2,
                         probe_samples=6)
        for mode in ('per-pair', 'shared-bottom')
    }
    # per pair: only the jobs from source 'left', to keep the test short
    per_pair = [j for j in plans['per-pair'].jobs
                if j.info['source'] == 'left']
    jobs = per_pair + plans['shared-bottom'].jobs
    for plan in plans.values():
        write_jobs(plan, launcher='none')
    out = io.StringIO()
    failed = run_jobs(jobs, max_parallel=2, env=env(), out=out)
    logs = ''.join(open(j.log_path).read()[-2000:] for j in jobs)
    assert not failed, out.getvalue() + logs
    assert 'RecombinationHook: blocks' in logs
    # the shared-bottom sweep is complete: run_sweep only collects
    out = io.StringIO()
    assert run_sweep(plans['shared-bottom'], launcher='none', out=out,
                     exec_mode='per-job') == 0
    assert '2 already done' in out.getvalue()
    aff = load_affinity(plans['shared-bottom'].affinity_path)
    assert aff['tasks'] == ['left', 'sum'] and aff['blocks'] == ['layer2']

    shared = osp.join(tmp_path, 'shared-bottom', 'jobs',
                      'shared__from_left__split3', 'affinity_probe')
    assert json.load(open(osp.join(shared, 'meta.json')))[
        'recombination'] == dict(target=None, source='left', split=3)
    pair_losses = np.concatenate([
        np.load(osp.join(j.job_dir, 'affinity_probe', 'losses.npy'))
        for j in per_pair
    ])
    assert [j.info['target'] for j in per_pair] == ['left', 'sum']
    np.testing.assert_allclose(
        np.load(osp.join(shared, 'losses.npy')), pair_losses, rtol=1e-4)


# ------------------------------------------- collect: multi-target runs

def write_probe(run_dir, tasks, rec, losses):
    probe = osp.join(run_dir, 'affinity_probe')
    os.makedirs(probe)
    np.save(osp.join(probe, 'losses.npy'), np.asarray(losses, np.float32))
    with open(osp.join(probe, 'meta.json'), 'w') as f:
        json.dump(dict(tasks=tasks, splits=['s1', 's2'],
                       sample_indices=[0, 1, 2, 3], recombination=rec), f)


def test_collect_multi_target_runs(tmp_path):
    rng = np.random.default_rng(0)
    losses = {(t, s): rng.random(4) for t in 'ab' for s in 'ab'}
    shared, pairs = [], []
    for s in 'ab':
        d = str(tmp_path / f'shared_{s}')
        write_probe(d, ['a', 'b'], dict(target=None, source=s, split=1),
                    [losses['a', s], losses['b', s]])
        shared.append(d)
        for t in 'ab':
            d = str(tmp_path / f'{t}_from_{s}')
            write_probe(d, [t], dict(target=t, source=s, split=1),
                        [losses[t, s]])
            pairs.append(d)
    ta, la, aff_shared, meta = collect_tournament(shared, tasks=['a', 'b'])
    tb, lb, aff_pairs, _ = collect_tournament(pairs, tasks=['a', 'b'])
    assert ta == tb and la == lb == ['s1']
    np.testing.assert_allclose(aff_shared, aff_pairs)
    assert len(meta['runs']) == 4
    with pytest.raises(ValueError, match='duplicate runs'):
        collect_tournament(shared + pairs[:1])


@pytest.mark.parametrize('files, expected', [
    ((), ''),
    (('iter_2.pth', ), '--resume'),  # killed before last_checkpoint
    (('last_checkpoint', ), '--resume'),
])
def test_job_script_resumes_from_any_numbered_checkpoint(
        tmp_path, files, expected):
    from types import SimpleNamespace

    from branched_mtl.apis.sweep import _job_script
    job_dir = tmp_path / 'job'
    job_dir.mkdir()
    for name in files:
        (job_dir / name).write_text('x')
    job = SimpleNamespace(name='job', job_dir=str(job_dir))
    # the command only records the flag it was given, then fails
    script = _job_script(job, 'echo "resume=$RESUME" > "$JOB_DIR/cmd"; false',
                         resume=True, cwd=str(tmp_path), python='python')
    path = tmp_path / 'run.sh'
    path.write_text(script)
    subprocess.run(['bash', str(path)], capture_output=True, timeout=60)
    assert (job_dir / 'cmd').read_text().strip() == f'resume={expected}'
