"""Sweep workers belong to their sweep: they end with it, ``kill -9``
included, and a slot never holds two.

Before, a worker started with ``start_new_session`` outlived a killed
sweep parent and ran the whole queue (a rerun then doubled the workers),
torchrun's exit status 1 after a killed worker read as "nothing left", and
a restarted slot could run beside the rank its killed torchrun left.
Here the mechanisms are checked with small processes (no training): a
watcher that kills its process group once the sweep's pid is gone, and
``PR_SET_PDEATHSIG`` for direct children.
"""
import importlib.util
import os
import os.path as osp
import signal
import subprocess
import sys
import time

from reliability_helpers import ROOT

PROC = osp.join(ROOT, 'branched_mtl', 'utils', 'proc.py')
# loads utils/proc.py alone: no torch, no OpenMMLab, a fast start
LOAD = ('import importlib.util, sys\n'
        f'spec = importlib.util.spec_from_file_location("proc", {PROC!r})\n'
        'proc = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(proc)\n')


def gone(pid, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:  # reap it if it is ours
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie of ours counts as gone
        with open(f'/proc/{pid}/stat') as f:
            if f.read().split(')')[-1].split()[0] == 'Z':
                return True
        time.sleep(0.1)
    return False


def start_parent(child_code, pdeathsig=True):
    """A stand-in sweep parent: starts one worker-like child in its own
    session (as run_workers does), prints the child's pid, then waits.
    Without ``pdeathsig`` the child stands for a worker reached through
    bash and torchrun, which the parent-death signal does not reach."""
    preexec = ', preexec_fn=proc.die_with_parent' if pdeathsig else ''
    parent = (
        LOAD + 'import os, subprocess, time\n'
        'env = dict(os.environ)\n'
        'env[proc.PARENT_ENV] = str(os.getpid())\n'
        f'child = subprocess.Popen([sys.executable, "-c", {child_code!r}],'
        f' env=env, start_new_session=True{preexec})\n'
        'print(child.pid, flush=True)\n'
        'time.sleep(120)\n')
    proc = subprocess.Popen([sys.executable, '-c', parent],
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def test_worker_ends_when_the_sweep_is_killed():
    """The child's own child (torchrun's rank) is reached through the
    watcher: it kills the whole group once the sweep's pid is gone."""
    rank = ('import time; time.sleep(120)')
    worker = (LOAD + 'import subprocess, time\n'
              f'rank = subprocess.Popen([sys.executable, "-c", {rank!r}])\n'
              'proc.watch_parent(interval=0.1)\n'
              'time.sleep(120)\n')
    parent, child = start_parent(worker, pdeathsig=False)
    time.sleep(1.0)  # the watcher is running
    pgid = os.getpgid(child)
    members = [int(p) for p in os.listdir('/proc') if p.isdigit()
               and _pgid(int(p)) == pgid]
    assert len(members) >= 2, members  # the worker and its rank
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for pid in members:
        assert gone(pid), f'{pid} outlived the killed sweep'


def test_direct_child_dies_with_its_parent():
    """PR_SET_PDEATHSIG: a step started by tools/branch.py (the sweep)
    ends with it, without any watcher."""
    parent, child = start_parent('import time; time.sleep(120)')
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert gone(child), 'the child outlived its killed parent'


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_rank_ends_when_its_launcher_dies():
    """torchrun starts each rank in a session of its own: a killed
    torchrun (the sweep alive) leaves a rank its group does not reach.
    The rank's watcher sees its parent change and ends its group."""
    rank_child = 'import time; time.sleep(120)'
    rank = (LOAD + 'import subprocess, time\n'
            f'child = subprocess.Popen([sys.executable, "-c", '
            f'{rank_child!r}])\n'
            'print(child.pid, flush=True)\n'
            'proc.watch_parent(interval=0.1)\n'
            'time.sleep(120)\n')
    # the launcher: starts the rank in a new session, as torchrun does
    launcher = ('import subprocess, sys, time\n'
                f'r = subprocess.Popen([sys.executable, "-c", {rank!r}], '
                'start_new_session=True, stdout=subprocess.PIPE, text=True)\n'
                'print(r.pid, r.stdout.readline().strip(), flush=True)\n'
                'time.sleep(120)\n')
    env = dict(os.environ)
    env['BRANCHED_MTL_SWEEP_PID'] = str(os.getpid())  # this test: alive
    proc = subprocess.Popen([sys.executable, '-c', launcher], env=env,
                            stdout=subprocess.PIPE, text=True)
    rank_pid, child_pid = map(int, proc.stdout.readline().split())
    try:
        assert os.getpgid(rank_pid) != os.getpgid(proc.pid)
        time.sleep(0.5)  # the watcher is running
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert gone(rank_pid), 'the rank outlived its killed launcher'
        assert gone(child_pid), 'the rank\'s child outlived it'
    finally:
        for pid in (rank_pid, child_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_kill_marked_reaches_other_sessions_only_marked():
    """The sweep kills a slot's processes by the mark in their
    environment, whatever their session; unmarked ones are left."""
    spec = importlib.util.spec_from_file_location('proc_module', PROC)
    proc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proc)
    mark = f'test-{os.getpid()}:0'
    sleep = [sys.executable, '-c', 'import time; time.sleep(120)']
    marked = [subprocess.Popen(sleep, env=dict(os.environ, **{
        proc.SLOT_ENV: mark}), start_new_session=new) for new in (0, 1)]
    other = subprocess.Popen(sleep, env=dict(os.environ, **{
        proc.SLOT_ENV: mark + '0'}))
    try:
        deadline = time.time() + 10
        while sorted(proc.marked(proc.SLOT_ENV, mark)) != sorted(
                p.pid for p in marked):
            assert time.time() < deadline, proc.marked(proc.SLOT_ENV, mark)
            time.sleep(0.05)
        assert proc.kill_marked(proc.SLOT_ENV, mark, timeout=10) == []
        for p in marked:
            assert p.wait(5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for p in marked + [other]:
            p.kill()
            p.wait()
