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
