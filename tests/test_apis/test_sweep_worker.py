"""In-process sweep workers: one process trains many jobs, the same probe
losses as one process per job, a failed job does not stop the worker,
kill -9 of a worker loses only its current job; early stopping."""
import argparse
import io
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import MULTIDIGITS, ROOT, slow, tiny_options
from mmengine.config import Config, DictAction

from branched_mtl.apis import single_task_config
from branched_mtl.apis.sweep import (load_plan_config, plan_sweep, run_jobs,
                                     run_sweep, worker_command, write_jobs,
                                     write_queue)
from branched_mtl.registry import build_stock
from branched_mtl.utils.package import tools_dir

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
# the installation's tools, as the sweep finds them (utils.package)
WORKER = osp.join(tools_dir(), 'sweep_worker.py')

# a hook that holds one job (HOLD_JOB) at iteration 3, after iter_2.pth,
# until HOLD_FILE exists: a worker killed there has a job half done
HOLD_HOOK = r'''
import os, time
from mmengine.hooks import Hook
from branched_mtl.registry import HOOKS

@HOOKS.register_module()
class HoldHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        job = os.environ.get('HOLD_JOB')
        if not job or runner.iter != 2 or \
                os.path.basename(runner.work_dir) != job:
            return
        open(os.path.join(runner.work_dir, 'held'), 'w').close()
        while not os.path.exists(os.environ['HOLD_FILE']):
            time.sleep(0.05)
'''


def env(**extra):
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    e.update(extra)
    return e


def tiny_cfg(iters=2, extra=()):
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    opts = tiny_options('unused', iters=iters, ckpt_interval=1 if iters > 2
                        else 2, samples=16) + list(extra)
    return load_plan_config(CFG, parser.parse_args(['--o'] + opts).o)


def single_task_runs(root, tasks):
    cfg = Config.fromfile(CFG)
    for i, task in enumerate(tasks):
        model = build_stock(single_task_config(cfg, task).model)
        torch.manual_seed(i)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        os.makedirs(osp.join(root, task), exist_ok=True)
        path = osp.join(root, task, 'iter_2.pth')
        torch.save(dict(state_dict=model.state_dict(), meta={}), path)
        with open(osp.join(root, task, 'last_checkpoint'), 'w') as f:
            f.write(path)
    return str(root)


def attempts(job_dir):
    path = osp.join(job_dir, 'attempts.log')
    lines = open(path).read().splitlines() if osp.exists(path) else []
    return lines


def counts(job_dir):
    lines = attempts(job_dir)
    return (sum(ln.startswith('start') for ln in lines),
            sum(ln.startswith('done') for ln in lines))


def test_worker_command_per_launcher(tmp_path):
    queue = str(tmp_path / 'queue.json')
    cmd = worker_command(queue, 'pytorch', 2, '/x/dist_train.sh', stage=1)
    assert cmd.startswith(f'TRAIN_SCRIPT={WORKER} ')
    assert f'bash /x/dist_train.sh {queue} 2 --stage 1' in cmd
    assert 'srun' in worker_command(queue, 'slurm', 1)
    assert '--launcher=slurm' in worker_command(queue, 'slurm', 1)
    none = worker_command(queue, 'none', 1)
    assert none.endswith(f'{WORKER} {queue}') and 'dist_train' not in none
    with pytest.raises(ValueError, match='launcher'):
        worker_command(queue, 'mpi', 1)


def test_in_process_equals_per_job(tmp_path):
    """Four jobs in one worker process give the probe losses that one
    process per job gives."""
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    plans = {
        name: plan_sweep(tiny_cfg(), str(tmp_path / name), tasks='left,sum',
                         splits=splits, mode='shared-bottom',
                         single_task_dir=st, probe_samples=6)
        for name, splits in (('per-job', '3'), ('in-process', '2,3'))
    }
    write_jobs(plans['per-job'], launcher='none')
    failed = run_jobs(plans['per-job'].jobs, max_parallel=2, env=env(),
                      out=io.StringIO())
    assert not failed
    out = io.StringIO()
    rc = run_sweep(plans['in-process'], launcher='none', max_parallel=1,
                   env=env(), out=out)
    jobs = plans['in-process'].jobs
    assert rc == 0, out.getvalue() + ''.join(
        open(j.log_path).read()[-2000:] for j in jobs)
    assert '(in-process)' in out.getvalue()
    # one worker: every job ran in the same process
    pids = {ln.split('pid=')[1].split()[0] for j in jobs
            for ln in attempts(j.job_dir) if ln.startswith('start')}
    assert len(jobs) == 4 and len(pids) == 1
    assert all('in-process' in attempts(j.job_dir)[0] for j in jobs)
    # each job's log is its own: the recombination of its source only
    for job in jobs:
        text = open(job.log_path).read()
        assert 'RecombinationHook: blocks' in text
        assert text.count('Iter(train) [2/2]') == 1, job.name
        # the tournament reads losses only: no features written
        assert not osp.exists(osp.join(job.job_dir, 'affinity_probe',
                                       'features'))
    for job in plans['per-job'].jobs:
        twin = osp.join(tmp_path, 'in-process', 'jobs',
                        osp.basename(job.job_dir), 'affinity_probe')
        np.testing.assert_allclose(
            np.load(osp.join(twin, 'losses.npy')),
            np.load(osp.join(job.job_dir, 'affinity_probe', 'losses.npy')),
            rtol=1e-5)
    assert osp.isfile(plans['in-process'].affinity_path)


def test_failed_job_recorded_worker_goes_on(tmp_path):
    st = single_task_runs(tmp_path / 'st', ['left', 'right'])
    work = str(tmp_path / 'sweep')

    def plan():
        return plan_sweep(tiny_cfg(), work, tasks='left,right', splits='3',
                          single_task_dir=st, probe_samples=6)

    first = plan()
    # the checkpoint of 'left' is damaged after planning checked it
    good = open(osp.join(st, 'left', 'iter_2.pth'), 'rb').read()
    with open(osp.join(st, 'left', 'iter_2.pth'), 'wb') as f:
        f.write(b'not a checkpoint')
    out = io.StringIO()
    rc = run_sweep(first, launcher='none', max_parallel=1, env=env(),
                   out=out)
    text = out.getvalue()
    assert rc == 1, text
    names = {j.name: j for j in first.jobs}
    # every job reads left's checkpoint except right__from_right
    ok = names['right__from_right__split3']
    assert ok.is_done() and counts(ok.job_dir) == (1, 1)
    for name in ('left__from_left__split3', 'left__from_right__split3',
                 'right__from_left__split3'):
        assert f'{name}: ' in text and 'iter_2.pth' in text, text
        record = json.load(open(osp.join(names[name].job_dir,
                                         'failed.json')))
        assert 'iter_2.pth' in record['reason']
        assert 'Traceback' in open(names[name].log_path).read()
    assert not osp.exists(first.affinity_path)

    # repaired: the same command runs only the failed jobs
    with open(osp.join(st, 'left', 'iter_2.pth'), 'wb') as f:
        f.write(good)
    out = io.StringIO()
    assert run_sweep(plan(), launcher='none', max_parallel=2, env=env(),
                     out=out) == 0, out.getvalue()
    assert counts(ok.job_dir) == (1, 1)
    for name in ('left__from_left__split3', 'right__from_left__split3'):
        assert counts(names[name].job_dir) == (2, 1)
    assert osp.isfile(first.affinity_path)


@slow
def test_kill_9_loses_only_the_running_job(tmp_path):
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    (tmp_path / 'mods').mkdir()
    (tmp_path / 'mods' / 'hold_hook.py').write_text(HOLD_HOOK)
    work = str(tmp_path / 'sweep')
    hold = str(tmp_path / 'release')

    def plan():
        p = plan_sweep(
            tiny_cfg(iters=4, extra=[
                "custom_imports.imports=[hold_hook]",
                'custom_imports.allow_failed_imports=False']),
            work, tasks='left,sum', splits='2,3', mode='shared-bottom',
            single_task_dir=st, probe_samples=6)
        for job in p.jobs:
            job.cfg.custom_hooks.append(dict(type='HoldHook'))
        return p

    first = plan()
    held = first.jobs[2]  # two jobs finish before it
    write_jobs(first, launcher='none')
    queue = write_queue(first, resume=True)
    worker_env = env(PYTHONPATH=f'{tmp_path / "mods"}:{ROOT}',
                     HOLD_JOB=osp.basename(held.job_dir), HOLD_FILE=hold)
    log = open(tmp_path / 'worker.log', 'w')
    proc = subprocess.Popen([sys.executable, WORKER, queue], env=worker_env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not osp.exists(osp.join(held.job_dir, 'held')):
            assert proc.poll() is None, open(tmp_path / 'worker.log').read()
            assert time.time() < deadline, 'the held job never started'
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert [j.is_done() for j in first.jobs] == [True, True, False, False]
    assert osp.isfile(osp.join(held.job_dir, 'iter_2.pth'))

    open(hold, 'w').close()
    out = io.StringIO()
    rc = run_sweep(plan(), launcher='none', max_parallel=1, resume=True,
                   env=worker_env, out=out)
    assert rc == 0, out.getvalue() + open(held.log_path).read()[-3000:]
    assert [counts(j.job_dir) for j in first.jobs] == [
        (1, 1), (1, 1), (2, 1), (1, 1)]
    log_text = open(held.log_path).read()
    assert '--resume' in log_text.split('===== attempt')[-1].splitlines()[0]
    assert 'Iter(train) [3/4]' in log_text.split('===== attempt')[-1]
    assert 'Iter(train) [1/4]' not in log_text.split('===== attempt')[-1]


def test_early_stopping_stops_and_records(tmp_path):
    """A recombined run whose probe loss cannot improve by the 50 % asked
    (learning rate 0: only batch-norm statistics move it) stops after
    `patience` checks; the affinity probe is still written."""
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    plan = plan_sweep(
        tiny_cfg(iters=12, extra=['optim_wrapper.optimizer.lr=0.0']),
        str(tmp_path / 'sweep'), tasks='left,sum', splits='3',
        mode='shared-bottom', single_task_dir=st, probe_samples=6,
        early_stop=dict(patience=2, interval=2, min_delta=0.5))
    jobs = plan.jobs[:1]
    hooks = [h['type'] for h in jobs[0].cfg.custom_hooks]
    assert 'ProbeEarlyStoppingHook' in hooks and 'AffinityHook' in hooks
    write_jobs(plan, launcher='none')
    failed = run_jobs(jobs, env=env(), out=io.StringIO())
    assert not failed, open(jobs[0].log_path).read()[-3000:]
    record = json.load(open(osp.join(jobs[0].job_dir, 'early_stop.json')))
    # first check sets the best; two more without improvement stop it
    assert record['stopped_at'] == 6 and record['max_iters'] == 12
    assert [c['iter'] for c in record['checks']] == [2, 4, 6]
    assert osp.isfile(osp.join(jobs[0].job_dir, 'affinity_probe',
                               'meta.json'))
    assert 'training stops at iteration 6 of 12' in open(
        jobs[0].log_path).read()


def test_early_stopping_runs_whole_schedule_while_improving(tmp_path):
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    plan = plan_sweep(
        tiny_cfg(iters=6, extra=['optim_wrapper.optimizer.lr=0.0']),
        str(tmp_path / 'sweep'), tasks='left,sum', splits='3',
        mode='shared-bottom', single_task_dir=st, probe_samples=6,
        early_stop=dict(patience=1, interval=2))
    write_jobs(plan, launcher='none')
    job = plan.jobs[0]
    assert not run_jobs([job], env=env(), out=io.StringIO())
    record = json.load(open(osp.join(job.job_dir, 'early_stop.json')))
    losses = [c['loss'] for c in record['checks']]
    # the loss fell at every check (batch-norm statistics settle), so the
    # run went to its end: no check at the last iteration
    assert record['stopped_at'] is None and len(losses) == 2
    assert losses[1] < losses[0] and record['best'] == losses[1]
