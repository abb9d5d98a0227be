"""``kill -9`` of a real sweep's processes (issue 24, point 2).

A tiny sweep (two recombined jobs on random single-task models, four
iterations) with the default launcher: ``tools/dist_train.sh``, torchrun,
``tools/sweep_worker.py``. One job holds at iteration 3 (after
``iter_2.pth``) the first time it gets there, so each kill lands in the
middle of a job. The sweep parent is forked from this process (imported
already: it starts at once and is a real process to kill); a thread
samples the process table throughout, so two workers at a time are seen
however briefly they coexist.

Before the fix: a killed worker made torchrun exit 1, read as "nothing
left" (the sweep ended "not run (a worker crashed)"); a killed torchrun
was restarted while its rank, in a session of its own, ran on (two
workers at ``--max-parallel 1``); a killed sweep parent left its worker
running the whole queue; a killed ``tools/branch.py`` left its sweep
holding the sweep's lock, so the rerun was refused.
"""
import multiprocessing
import os
import os.path as osp
import signal
import sys
import threading
import time

import numpy as np
import pytest

from reliability_helpers import (ROOT, TOOLS, one_thread_after_fork, run,
                                 slow, tiny_options, tool,
                                 write_main_config)

CFG = osp.join(ROOT, 'configs', 'multidigits',
               'resnet18-thin_all-shared_multidigits.py')

# holds each job of HOLD_JOBS at iteration 3 (its iter_2.pth written)
# once: the first worker to get there stops until killed; a resumed one
# goes on
HOLD_HOOK = r'''
import os, time
from mmengine.hooks import Hook
from branched_mtl.registry import HOOKS

@HOOKS.register_module()
class HoldHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        jobs = os.environ.get('HOLD_JOBS', '').split(',')
        if runner.iter != 2 or os.path.basename(runner.work_dir) not in jobs:
            return
        held = os.path.join(runner.work_dir, 'held')
        if os.path.exists(held):
            return
        open(held, 'w').close()
        deadline = time.time() + 200  # a failed test leaves no hang
        while time.time() < deadline:
            time.sleep(0.1)
'''


# ------------------------------------------------------- the process table

def _argv_state(pid):
    """A process's command line, state letter and parent, or Nones."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            argv = f.read().decode(errors='replace').split('\0')
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None, None, None
    return argv, fields[0], int(fields[1])


def processes(marker):
    """``{pid: kind}`` of the live processes of a sweep: ``'rank'``
    (tools/sweep_worker.py), ``'launcher'`` (torchrun), ``'sweep'``
    (tools/sweep_recombination.py); zombies are dead,
    and a fork of one of them (a data loader's worker, a subprocess
    before its exec) is not a second one."""
    table = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            argv, state, ppid = _argv_state(int(entry))
            if argv and state != 'Z' and marker in ' '.join(argv):
                table[int(entry)] = (argv, ppid)
    found = {}
    for pid, (argv, ppid) in table.items():
        if ppid in table and table[ppid][0] == argv:
            continue
        names = [osp.basename(a) for a in argv]
        if 'torch.distributed.run' in argv:
            found[pid] = 'launcher'
        elif 'sweep_worker.py' in names:
            found[pid] = 'rank'
        elif 'sweep_recombination.py' in names:
            found[pid] = 'sweep'
    return found


class Watch:
    """Samples the workers of a sweep every 20 ms: the most ranks seen at
    once, and every pid seen."""

    def __init__(self, marker):
        self.marker, self.most, self.seen = marker, 0, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            now = processes(self.marker)
            self.seen.update(now)
            self.most = max(self.most, sum(k == 'rank' for k in now.values()))
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join()


def wait_for(condition, what, timeout=180.0, alive=None):
    deadline = time.time() + timeout
    while not condition():
        if alive is not None:
            assert alive(), f'ended before {what}'
        assert time.time() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


# ----------------------------------------------------------------- sweeps

TASKS = ['left', 'sum', 'right']


@pytest.fixture(scope='module')
def single_task(tmp_path_factory):
    """Finished single-task runs (random models), so that a sweep has only
    its recombined jobs (one per source task); and the hold hook."""
    import torch
    from mmengine.config import Config

    from branched_mtl.apis import single_task_config
    from branched_mtl.registry import build_stock
    root = tmp_path_factory.mktemp('single_task')
    cfg = Config.fromfile(CFG)
    for i, task in enumerate(TASKS):
        model = build_stock(single_task_config(cfg, task).model)
        torch.manual_seed(i)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.1)
        os.makedirs(root / task)
        path = str(root / task / 'iter_2.pth')
        torch.save(dict(state_dict=model.state_dict(), meta={}), path)
        (root / task / 'last_checkpoint').write_text(path)
    mods = tmp_path_factory.mktemp('mods')
    (mods / 'hold_hook.py').write_text(HOLD_HOOK)
    return str(root), str(mods)


def make_plan(work, single_task, tasks, hold=True):
    """The sweep: one job per source task, 4 iterations, a checkpoint at
    each (the held job resumes from iter_2.pth)."""
    import argparse

    from mmengine.config import DictAction

    from branched_mtl.apis.sweep import load_plan_config, plan_sweep
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    opts = tiny_options('unused', iters=4, ckpt_interval=1, samples=16)
    if hold:
        opts += ['custom_imports.imports=[hold_hook]',
                 'custom_imports.allow_failed_imports=False']
    cfg = load_plan_config(CFG, parser.parse_args(['--o'] + opts).o)
    plan = plan_sweep(cfg, str(work), tasks=','.join(tasks), splits='3',
                      mode='shared-bottom', single_task_dir=single_task[0],
                      probe_samples=6)
    if hold:
        for job in plan.jobs:
            job.cfg.custom_hooks.append(dict(type='HoldHook'))
    return plan


def _sweep_process(plan, log, kwargs):
    from branched_mtl.apis.sweep import run_sweep
    one_thread_after_fork()
    code = 1
    try:
        with open(log, 'a') as out:
            code = run_sweep(plan, out=out, **kwargs)
    finally:
        os._exit(code)


class Sweep:
    """A sweep of ``plan`` (the default launcher: dist_train.sh, torchrun,
    sweep_worker.py) whose jobs (those of ``held``) each hold once; the
    parent is run_sweep
    in a process forked from this one (imported already: it starts at
    once, and it is a real process to kill). ``watch`` samples its
    workers throughout."""

    def __init__(self, tmp_path, single_task, tasks, held=None):
        self.plan = make_plan(tmp_path / 'sweep', single_task, tasks)
        held = self.plan.jobs if held is None else [
            self.plan.jobs[k] for k in held]
        self.marker = self.plan.work_dir
        self.log = str(tmp_path / 'sweep.log')
        self.env = dict(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
                        PYTHONPATH=f'{single_task[1]}:{ROOT}',
                        HOLD_JOBS=','.join(osp.basename(j.job_dir)
                                           for j in held))
        self.watch = Watch(self.marker)
        self.proc = None

    def start(self):
        """The sweep command (again): --resume, one worker."""
        self.proc = multiprocessing.get_context('fork').Process(
            target=_sweep_process, args=(self.plan, self.log, dict(
                env=self.env, resume=True, max_parallel=1)))
        self.proc.start()

    def hold(self, k):
        """The live workers once job ``k`` holds."""
        wait_for(lambda: osp.exists(osp.join(self.plan.jobs[k].job_dir,
                                             'held')),
                 f'job {k} to hold', alive=self.proc.is_alive)
        return processes(self.marker)

    def end(self, timeout=150):
        self.proc.join(timeout)
        assert self.proc.exitcode is not None, 'the sweep did not end'
        return self.proc.exitcode

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        for pid in processes(self.marker):  # what a failed test left
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.watch.stop()

    def starts(self):
        """Attempts per job (attempts.log)."""
        return [sum(ln.startswith('start') for ln in
                    read(j.attempts_path).splitlines())
                for j in self.plan.jobs]

    def resumed(self, k):
        """Whether job k's last attempt resumed from a checkpoint."""
        last = read(self.plan.jobs[k].log_path).split('===== attempt')[-1]
        return '--resume' in last.splitlines()[0]


def read(path):
    return open(path).read() if osp.exists(path) else ''


def probe_losses(plan):
    return {j.name: np.load(osp.join(j.job_dir, 'affinity_probe',
                                     'losses.npy')) for j in plan.jobs}


def uninterrupted(tmp_path, single_task, tasks):
    """The probe losses of the same jobs never killed (trained in this
    process, one after the other)."""
    from branched_mtl.apis.sweep import write_jobs, write_queue
    from branched_mtl.apis.sweep.worker import run_worker
    plan = make_plan(tmp_path / 'whole', single_task, tasks, hold=False)
    write_jobs(plan, launcher='none')
    with open(os.devnull, 'w') as out:
        assert run_worker(write_queue(plan, resume=False), 'none',
                          out=out) == 0
    return probe_losses(plan)


def assert_same_losses(plan, expected):
    losses = probe_losses(plan)
    assert sorted(losses) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(losses[name], value, rtol=1e-5,
                                   err_msg=name)


def one(pids, kind):
    found = [p for p, k in pids.items() if k == kind]
    assert len(found) == 1, pids
    return found[0]


def gone(pids, timeout=5.0):
    """The pids among ``pids`` still alive after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        left = [p for p in pids if _argv_state(p)[1] not in (None, 'Z')]
        if not left or time.time() > deadline:
            return left
        time.sleep(0.05)


# ------------------------------------------------------------------ tests

def kill_worker(sweep, k):
    """kill -9 of tools/sweep_worker.py while job k holds: torchrun exits
    1; the slot starts again and resumes the job."""
    os.kill(one(sweep.hold(k), 'rank'), signal.SIGKILL)


def kill_torchrun(sweep, k):
    """kill -9 of torchrun while job k holds: its rank (a session of its
    own) must go before the slot starts again."""
    pids = sweep.hold(k)
    os.kill(one(pids, 'launcher'), signal.SIGKILL)
    return one(pids, 'rank')


def kill_parent(sweep, k):
    """kill -9 of the sweep parent while job k holds: none of its workers
    outlives it (a few seconds: the rank watches once a second)."""
    pids = sweep.hold(k)
    assert sorted(pids.values()) == ['launcher', 'rank'], pids
    os.kill(sweep.proc.pid, signal.SIGKILL)
    sweep.proc.join()
    left = gone(pids)
    assert not left, f'{left} outlived the killed sweep parent'


@slow
def test_kill_9_worker_torchrun_and_sweep_parent(tmp_path, single_task):
    """The three worker kills of one sweep, one per job: the worker (job
    0), torchrun (job 1), the sweep parent (job 2). The first two jobs
    resume from their checkpoints and finish, never two workers at once;
    nothing outlives the parent. (The rerun after the parent's kill, and
    the probe losses against a sweep never killed: the slow tests, one
    kill each.)"""
    sweep = Sweep(tmp_path, single_task, TASKS)
    try:
        sweep.start()
        kill_worker(sweep, 0)
        orphan = kill_torchrun(sweep, 1)
        kill_parent(sweep, 2)
        assert orphan not in processes(sweep.marker)
    finally:
        sweep.close()
    log = read(sweep.log)
    # the worker's kill: torchrun's exit status 1 is a death too
    assert 'worker 0 died (exit code 1); starting it again' in log, log
    assert 'worker 0 died (exit code -9); starting it again' in log, log
    assert [j.is_done() for j in sweep.plan.jobs] == [True, True, False]
    assert sweep.starts() == [2, 2, 1]
    assert sweep.resumed(0) and sweep.resumed(1)
    ranks = [p for p, k in sweep.watch.seen.items() if k == 'rank']
    assert len(ranks) == 3  # the first worker and two restarts
    assert sweep.watch.most == 1, 'two workers ran at --max-parallel 1'


@slow
@pytest.mark.parametrize('kill', [kill_worker, kill_torchrun, kill_parent])
def test_kill_9_each_alone(tmp_path, single_task, kill):
    """Each kill in a sweep of two jobs (the second holds), then the sweep
    (or, after the parent's kill, the same command: it finishes the queue
    with one worker) to the end; the probe losses are those of a sweep
    never killed."""
    sweep = Sweep(tmp_path, single_task, TASKS[:2], held=[1])
    try:
        sweep.start()
        kill(sweep, 1)
        if kill is kill_parent:
            sweep.start()
        assert sweep.end() == 0, read(sweep.log)
    finally:
        sweep.close()
    assert sweep.starts() == [1, 2]
    assert sweep.resumed(1)
    assert sweep.watch.most == 1, 'two workers ran at --max-parallel 1'
    assert_same_losses(sweep.plan, uninterrupted(tmp_path, single_task,
                                                 TASKS[:2]))


# ------------------------------------------------- tools/branch.py's sweep

# the tiny 3-task main job with the tournament affinity: its sweep has 15
# jobs of 2 iterations (3 sources x 5 splits, shared bottom)
TOURNAMENT = """
branch = dict(random_trees=0, probe=dict(dataset='val', num_samples=8),
              sweep=dict(mode='shared-bottom', iters=2))
"""


def _branch_process(argv, log):
    """tools/branch.py's main in a process forked from this one."""
    one_thread_after_fork()
    code = 1
    try:
        out = open(log, 'a', buffering=1)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        sys.argv = ['branch.py'] + argv
        code = tool('branch').main()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def kill_branch_in_sweep(tmp_path):
    """Run the main job, kill -9 it once its sweep has started its worker;
    the sweep and its worker must be gone within a few seconds, and the
    locks of the rerun free at once. Returns the command and work dir."""
    from branched_mtl.utils.lock import WorkDirLock
    cfg = write_main_config(tmp_path, TOURNAMENT)
    wd = tmp_path / 'wd'
    sweep_dir = wd / 'affinity' / 'sweep'
    argv = [cfg, '--work-dir', str(wd), '--affinity', 'tournament',
            '--budget', '70%']
    log = str(tmp_path / 'branch.log')
    branch = multiprocessing.get_context('fork').Process(
        target=_branch_process, args=(argv, log))
    branch.start()
    try:
        wait_for(lambda: sorted(processes(str(wd)).values()) == [
            'rank', 'sweep'], 'the sweep\'s worker', alive=branch.is_alive,
            timeout=300)
        pids = processes(str(wd))
        os.kill(branch.pid, signal.SIGKILL)
        branch.join()
        left = gone(pids)
        assert not left, f'{left} outlived tools/branch.py: ' + str(
            {p: pids[p] for p in left})
    finally:
        if branch.is_alive():
            os.kill(branch.pid, signal.SIGKILL)
        for pid in processes(str(wd)):
            os.kill(pid, signal.SIGKILL)
    # what the rerun takes first: the job's and its sweep's locks
    for folder in (wd, sweep_dir):
        WorkDirLock(str(folder)).acquire().release()
    return [osp.join(TOOLS, 'branch.py')] + argv, wd


def test_kill_9_branch_during_its_sweep(tmp_path):
    """kill -9 of tools/branch.py while its sweep trains: the sweep (a
    direct child, PR_SET_PDEATHSIG) and its worker end with it; the
    rerun's locks are free at once (the rerun itself: the slow test)."""
    kill_branch_in_sweep(tmp_path)


@slow
def test_kill_9_branch_during_its_sweep_then_rerun(tmp_path):
    """The same, then the same command at once, to the end."""
    command, wd = kill_branch_in_sweep(tmp_path)
    out = run(command, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    console = read(str(wd / 'affinity' / 'sweep' / 'console.log'))
    assert 'in use by another run' not in console
    assert (wd / 'report.md').exists()
