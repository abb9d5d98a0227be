"""Child processes that cannot outlive the process that started them.

A sweep's workers (and a main job's sweep) run in processes of their own;
killed with ``-9``, the parent cannot stop them, and an orphaned worker
would run the whole queue while the next sweep starts its own workers.

* :func:`die_with_parent` (a ``preexec_fn``) asks Linux to send the child
  ``SIGKILL`` when its parent dies (``PR_SET_PDEATHSIG``, through ctypes);
* :func:`watch_parent` covers what that signal cannot reach (a worker
  started through ``bash`` and torchrun): a thread that kills the
  worker's whole process group once the given process, or the process
  that started this one (torchrun), is gone;
* :func:`kill_marked` finds a worker's processes wherever they are:
  torchrun starts each rank in a session of its own, out of reach of the
  launcher's process group, so the sweep marks every process of a slot
  with an environment variable, inherited by all of them, and kills by
  that mark before it starts the slot again.
"""
import ctypes
import os
import os.path as osp
import signal
import sys
import threading
import time
from typing import List, Optional

__all__ = ['die_with_parent', 'watch_parent', 'kill_marked', 'PARENT_ENV',
           'SLOT_ENV']

# the pid a sweep's workers belong to
PARENT_ENV = 'BRANCHED_MTL_SWEEP_PID'
# the run and slot of a worker: every process of one worker carries it
SLOT_ENV = 'BRANCHED_MTL_SWEEP_SLOT'
_PR_SET_PDEATHSIG = 1


def _load_libc():
    if not sys.platform.startswith('linux'):
        return None
    try:
        # the running program's symbols, libc's among them: loaded here,
        # not in the forked child, where a library search would run
        # ldconfig between fork and exec
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def die_with_parent() -> None:
    """In a child before ``exec``: receive ``SIGKILL`` when the parent
    dies (Linux only; elsewhere nothing)."""
    if _LIBC is None:
        return
    try:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except AttributeError:
        pass


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does
    not)."""
    if osp.isdir('/proc'):
        return _state(pid) not in (None, 'Z')
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _state(pid: int) -> Optional[str]:
    """The process's state letter (``Z``: a zombie), or None if gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def marked(name: str, value: str) -> List[int]:
    """The live processes (zombies left out) whose environment has
    ``name=value``, this one excepted; those of other users are not
    readable and are never ours."""
    mark = f'{name}={value}'.encode()
    found = []
    for entry in os.listdir('/proc') if osp.isdir('/proc') else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/environ', 'rb') as f:
                environ = f.read().split(b'\0')
        except OSError:
            continue
        if mark in environ and _state(int(entry)) not in (None, 'Z'):
            found.append(int(entry))
    return found


def kill_marked(name: str, value: str, timeout: float = 30.0) -> List[int]:
    """``SIGKILL`` every process marked ``name=value`` (:func:`marked`)
    until none is left.

    Returns:
        The pids still alive after ``timeout`` seconds (a process stuck in
        the kernel, e.g. on a dead file system); empty once none is left.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = marked(name, value)
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


def watch_parent(pid: Optional[int] = None,
                 interval: float = 0.5) -> Optional[threading.Thread]:
    """Kill this process's group once process ``pid`` is gone, or the
    process that started this one (a rank's torchrun: the rank is in a
    session of its own, which its launcher's group does not reach).

    Not ``PR_SET_PDEATHSIG`` on this process: it would end at once but
    leave what it started; the group goes together here.

    Args:
        pid: The process this one belongs to (default: ``$PARENT_ENV``;
            nothing is watched when neither is given).
        interval: Seconds between looks.

    Returns:
        The watching thread (a daemon), or None.
    """
    if pid is None:
        text = os.environ.get(PARENT_ENV, '')
        pid = int(text) if text.isdigit() else None
    if pid is None or pid <= 1:
        return None
    launcher = os.getppid()

    def watch() -> None:
        # a changed parent: the launcher died and this one was reparented
        while _alive(pid) and os.getppid() == launcher:
            time.sleep(interval)
        # the sweep or the launcher is gone: this worker and what it
        # started too
        try:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name='watch-sweep', daemon=True)
    thread.start()
    return thread
