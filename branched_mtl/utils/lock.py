"""One run per work dir: an ``fcntl`` lock on a file in the work dir.

The lock is an open file description's ``flock``: the OS drops it when the
process ends, ``kill -9`` included, so a stale lock cannot exist and there
is nothing to clean up. The file also names the holder (pid, host, command,
start time) so a second run can say who is in the way.
"""
import datetime
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Optional

from .errors import WorkDirBusy
from .paths import check_work_dir

__all__ = ['LOCK_NAME', 'WorkDirLock']

LOCK_NAME = '.workdir.lock'


class WorkDirLock:
    """An exclusive, non-blocking lock on ``<work_dir>/.workdir.lock``.

    Use as a context manager; a second holder in any process (this one
    included) gets :class:`WorkDirBusy` naming the first.

    Args:
        work_dir: The folder to own; created if missing.
        what: What holds it, for the other run's message (e.g.
            ``tools/branch.py``).
        option: How the folder was given, for errors (``--work-dir``).
    """

    def __init__(self, work_dir: str, what: Optional[str] = None,
                 option: str = '--work-dir') -> None:
        self.work_dir = work_dir
        self.what = what or ' '.join(osp.basename(a) if i == 0 else a
                                     for i, a in enumerate(sys.argv))
        self.option = option
        self.path = osp.join(osp.abspath(work_dir), LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        check_work_dir(self.work_dir, self.option)
        # not inherited by child processes (O_CLOEXEC): a job that outlives
        # a killed parent must not keep the parent's work dir locked
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkDirBusy(
                f'{self.work_dir} is in use by another run: {holder}. Two '
                'runs in one work dir would overwrite each other\'s '
                'checkpoints. Wait for it to finish, stop it, or give '
                'another ' + self.option) from None
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    command=self.what[:300],
                    since=datetime.datetime.now().isoformat(
                        timespec='seconds'))
        data = (json.dumps(info) + '\n').encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # drops the flock

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode('utf-8', 'replace')
        info = json.loads(raw)
        return (f'process {info["pid"]} on {info["host"]} '
                f'(`{info["command"]}`, since {info["since"]}; stop it '
                f'with `kill {info["pid"]}` if it hangs)')
    except (OSError, ValueError, KeyError, TypeError):
        # the holder has not written its name yet
        return 'another process (it just started)'
