"""One run per work dir: the lock, its holder's name, and kill -9."""
import os
import signal
import subprocess
import sys
import time

import pytest

from branched_mtl.utils import UserError, WorkDirBusy, WorkDirLock

HOLD = """
import sys, time
from branched_mtl.utils.lock import WorkDirLock
WorkDirLock(sys.argv[1], 'holder job').acquire()
print('locked', flush=True)
time.sleep(300)
"""


def test_second_holder_is_refused_with_the_first_named(tmp_path):
    wd = str(tmp_path / 'wd')
    with WorkDirLock(wd, 'first job'):
        with pytest.raises(WorkDirBusy, match=rf'{wd} is in use by another '
                           rf'run: process {os.getpid()} on .*first job'):
            WorkDirLock(wd, 'second').acquire()
    with WorkDirLock(wd, 'again'):  # released on exit
        pass


def test_kill_9_leaves_no_stale_lock(tmp_path):
    wd = str(tmp_path / 'wd')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-c', HOLD, wd],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirBusy,
                           match=rf'process {proc.pid} .*holder job'):
            WorkDirLock(wd).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while True:  # the OS drops the lock with the process
        try:
            WorkDirLock(wd).acquire().release()
            break
        except WorkDirBusy:
            assert time.time() < deadline
            time.sleep(0.1)


def test_work_dir_that_is_a_file(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    with pytest.raises(UserError, match=f'--work-dir {path} is a file'):
        WorkDirLock(str(path)).acquire()
    with pytest.raises(UserError, match=f'{path} is a file, not a folder'):
        WorkDirLock(str(path / 'sub')).acquire()
    assert path.read_text() == 'x'


def test_lock_is_not_inherited(tmp_path):
    """A child outliving its parent (an orphaned sweep job) must not keep
    the parent's work dir locked."""
    wd = str(tmp_path / 'wd')
    lock = WorkDirLock(wd).acquire()
    child = subprocess.Popen(['sleep', '30'], close_fds=False)
    try:
        lock.release()
        WorkDirLock(wd).acquire().release()
    finally:
        child.kill()
        child.wait()


# takes the lock, forks a child that keeps the lock's fd (fork, no exec)
# until 0.3 s after RELEASE exists, prints 'locked' and waits to be killed
HOLD_FORK = """
import os, sys, time
from branched_mtl.utils.lock import WorkDirLock
WorkDirLock(sys.argv[1], 'dying parent').acquire()
if os.fork() == 0:
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
    time.sleep(0.3)  # still holding when the rerun starts
    os._exit(0)
print('locked', flush=True)
time.sleep(300)
"""


def test_lock_of_a_dead_holder_is_taken_once_its_child_lets_go(tmp_path):
    """kill -9 of the holder while a child it forked still has the lock's
    fd (between fork and exec): a rerun waits for the child, not refused
    with a dead run's name; a live holder is refused at once."""
    wd, release = str(tmp_path / 'wd'), str(tmp_path / 'release')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, '-c', HOLD_FORK, wd, release],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == 'locked'
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # without grace: refused, naming the dead holder
        hasty = WorkDirLock(wd)
        hasty.grace_s = 0.0
        with pytest.raises(WorkDirBusy, match=rf'process {proc.pid} .*dying'):
            hasty.acquire()
        open(release, 'w').close()
        start = time.monotonic()
        with WorkDirLock(wd, 'rerun'):
            pass
        assert time.monotonic() - start < 5.0
    finally:
        open(release, 'w').close()
        if proc.poll() is None:
            proc.kill()
    # a live holder: refused without waiting out the grace
    with WorkDirLock(wd, 'alive'):
        start = time.monotonic()
        with pytest.raises(WorkDirBusy, match='alive'):
            WorkDirLock(wd).acquire()
        assert time.monotonic() - start < 1.0
