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
import time
from typing import Optional

from .errors import UserError, WorkDirBusy
from .paths import check_no_foreign_links, check_work_dir

__all__ = ['LOCK_NAME', 'WorkDirLock']

LOCK_NAME = '.workdir.lock'


def try_lock(path: str) -> Optional[int]:
    """An fd holding an exclusive flock on ``path``, or None if busy (a
    sweep job's lock: one worker per job).

    Raises:
        UserError: naming the lock file when it cannot be opened (e.g. it is
            a symbolic link).
    """
    try:
        # never through a link: the lock file is the job folder's own
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        why = 'it is a symbolic link' if osp.islink(path) else e.strerror
        raise UserError(f'cannot open the job lock {path} ({why}); remove '
                        'it') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


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
        # how long a lock whose named holder has died may stay held (by a
        # child of the holder between fork and exec, or still exiting)
        self.grace_s = 5.0

    def acquire(self) -> 'WorkDirLock':
        check_work_dir(self.work_dir, self.option)
        # a link under the lock's name (or elsewhere in the work dir, out of
        # it) would make this run write into a file it does not own
        check_no_foreign_links(osp.dirname(self.path), self.option)
        try:
            # O_NOFOLLOW: never truncate a link's target; O_CLOEXEC: not
            # inherited, so a job that outlives a killed parent does not keep
            # the parent's work dir locked
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            raise UserError(self._unusable(e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if _lock_when_holder_gone(fd, self.grace_s):
                return self._own(fd)
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkDirBusy(
                f'{self.work_dir} is in use by another run: {holder}. Two '
                'runs in one work dir would overwrite each other\'s '
                'checkpoints. Wait for it to finish, stop it, or give '
                'another ' + self.option) from None
        except OSError as e:
            os.close(fd)
            raise UserError(
                f'{self.option} {self.work_dir}: its file system does not '
                f'support file locks (flock: {e.strerror}), which keep two '
                'runs out of one work dir; give a work dir on a local or '
                'lock-capable file system') from None
        return self._own(fd)

    def _own(self, fd: int) -> 'WorkDirLock':
        """Name this run in the lock file it holds."""
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    command=self.what[:300],
                    since=datetime.datetime.now().isoformat(
                        timespec='seconds'))
        data = (json.dumps(info) + '\n').encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self.fd = fd
        return self

    def _unusable(self, e: OSError) -> str:
        """Why the lock file could not be opened, and what to do."""
        if osp.islink(self.path):
            return (f'{self.path} is a symbolic link; a work dir\'s lock '
                    'must be its own file (the run writes to it). Remove it')
        if osp.isdir(self.path):
            return (f'{self.path} is a folder; it must be the work dir\'s '
                    'lock file. Remove it (it holds nothing of a run)')
        return (f'{self.option} {self.work_dir}: cannot open its lock file '
                f'{self.path} ({e.strerror}); give a work dir you can write')

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # drops the flock

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _clean(value: object, limit: int = 120) -> str:
    """A holder field fit to print: printable characters only, cut short
    (the lock file is plain text anyone may have written)."""
    text = ''.join(c if c.isprintable() else '?' for c in str(value))
    return text if len(text) <= limit else text[:limit] + '...'


def _holder_record(fd: int) -> Optional[dict]:
    """What the lock file says of its holder (pid, host, command, since),
    or None where it is unreadable or not ours."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode('utf-8', 'replace'))
        pid = info['pid']
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            return None
        return info
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _holder_pid(fd: int) -> Optional[int]:
    """The pid the lock file names, if the holder ran on this host."""
    info = _holder_record(fd)
    if info is None or info.get('host') != socket.gethostname():
        return None
    return info['pid']


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has closed its files: not alive)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state not in ('Z', 'X')
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _lock_when_holder_gone(fd: int, grace_s: float) -> bool:
    """Take the lock if the run the file names is dead and whatever still
    holds the lock lets go within ``grace_s``: a child it forked and that
    has not reached exec yet (the lock is close-on-exec), or a process of
    it still exiting. Killed with ``-9`` under load, that takes a moment;
    an immediate rerun would otherwise be refused with a dead run's name.

    Returns:
        True with the lock held on ``fd``; False if the holder lives (or is
        not known) or the lock stays held.
    """
    pid = _holder_pid(fd)
    if pid is None or _alive(pid):
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False


def _read_holder(fd: int) -> str:
    info = _holder_record(fd)
    try:
        pid = info['pid']
        return (f'process {pid} on {_clean(info["host"])} '
                f'(`{_clean(info["command"])}`, since '
                f'{_clean(info["since"], 40)}; stop it with `kill {pid}` '
                'if it hangs)')
    except (KeyError, TypeError):
        # the holder has not written its name yet (or it is not ours)
        return 'another process (it just started)'
