"""Child processes that cannot outlive the process that started them.

A sweep's workers (and a main job's sweep) run in processes of their own;
killed with ``-9``, the parent cannot stop them, and an orphaned worker
would run the whole queue while the next sweep starts its own workers.

* :func:`die_with_parent` (a ``preexec_fn``) asks Linux to send the child
  ``SIGKILL`` when its parent dies (``PR_SET_PDEATHSIG``, through ctypes);
* :func:`watch_parent` covers what that signal cannot reach (a worker
  started through ``bash`` and torchrun): a thread that kills the
  worker's whole process group once the given process is gone.
"""
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Optional

__all__ = ['die_with_parent', 'watch_parent', 'PARENT_ENV']

# the pid a sweep's workers belong to
PARENT_ENV = 'BRANCHED_MTL_SWEEP_PID'
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before ``exec``: receive ``SIGKILL`` when the parent dies
    (Linux only; elsewhere nothing)."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                           use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_parent(pid: Optional[int] = None,
                 interval: float = 1.0) -> Optional[threading.Thread]:
    """Kill this process's group once process ``pid`` is gone.

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

    def watch() -> None:
        while _alive(pid):
            time.sleep(interval)
        # the sweep is gone: this worker, its launcher and its ranks too
        try:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name='watch-sweep', daemon=True)
    thread.start()
    return thread
