"""Running a sweep's jobs on this machine, ``max_parallel`` at a time."""
import contextlib
import datetime
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import IO, Dict, Optional, Sequence

from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import open_append
from branched_mtl.utils.lock import try_lock as _try_lock
from branched_mtl.utils.proc import (PARENT_ENV, SLOT_ENV, die_with_parent,
                                     kill_marked)
from .collect import collect_sweep
from .jobs import DIST_TRAIN, EXEC_MODES, worker_command, write_jobs
from .plan import Job, SweepPlan
from .worker import QUEUE_DIR, failed_in_run, job_failures, write_queue


def _free_port(taken: Sequence[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


class _Progress:
    """One text line: jobs done / running / failed / pending."""

    def __init__(self, total: int, out: IO, prefix: str = 'sweep') -> None:
        self.total, self.out, self.prefix = total, out, prefix
        self.start = time.monotonic()
        self.last = ''
        self.tty = hasattr(out, 'isatty') and out.isatty()

    def update(self, done: int, running: int, failed: int,
               pending: int) -> None:
        width = 24
        filled = int(width * done / max(1, self.total))
        line = (f'[{self.prefix}] [{"#" * filled}{"." * (width - filled)}] '
                f'{done}/{self.total} done, {running} running, {failed} '
                f'failed, {pending} pending')
        if line == self.last:
            return
        self.last = line
        elapsed = datetime.timedelta(
            seconds=int(time.monotonic() - self.start))
        if self.tty:
            self.out.write(f'\r{line} ({elapsed})\033[K')
        else:
            self.out.write(f'{line} ({elapsed})\n')
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.out.write('\n')
            self.out.flush()


class _Interrupted(KeyboardInterrupt):
    """SIGTERM / SIGHUP: stop the running jobs as for Ctrl-C."""


@contextlib.contextmanager
def _interrupt_on_signals():
    """SIGTERM and SIGHUP raise :class:`_Interrupted` (a KeyboardInterrupt)
    while the block runs, so one handler stops the jobs for all three."""
    def on_signal(signum, frame):
        raise _Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal)
           for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def job_env(max_parallel: int, env: Optional[Dict[str, str]] = None
            ) -> Dict[str, str]:
    """This process's environment for one of ``max_parallel`` concurrent
    training processes: the cores shared out among them (``OMP_NUM_THREADS``
    unless set), then ``env``."""
    base_env = dict(os.environ)
    if 'OMP_NUM_THREADS' not in base_env:
        # the cores shared out among the concurrent jobs
        base_env['OMP_NUM_THREADS'] = str(
            max(1, (os.cpu_count() or 1) // max_parallel))
    base_env.update(env or {})
    return base_env


def run_jobs(jobs: Sequence[Job],
             max_parallel: int = 1,
             port: Optional[int] = None,
             env: Optional[Dict[str, str]] = None,
             out: Optional[IO] = None,
             poll_interval: float = 0.2) -> Dict[str, str]:
    """Run the jobs' ``run.sh`` on this machine, ``max_parallel`` at a time.

    Jobs run in order as soon as the jobs they need are done; a failed job
    fails the jobs that need it and nothing else.

    Args:
        jobs: Jobs whose scripts :func:`write_jobs` wrote.
        max_parallel: Concurrent jobs.
        port: First master port (job slots use port, port + 1, ...); None
            picks free ports.
        env: Extra environment of the jobs.
        out: Where the progress line goes (default: stdout).
        poll_interval: Seconds between checks.

    Returns:
        ``{job name: reason}`` of the failed jobs.
    """
    if max_parallel < 1:
        raise ValueError(f'max_parallel must be >= 1, got {max_parallel}')
    out = out or sys.stdout
    by_name = {j.name: j for j in jobs}
    pending = [j for j in jobs if not j.is_done()]
    done = {j.name for j in jobs if j.is_done()}
    failed: Dict[str, str] = {}
    running: Dict[str, tuple] = {}  # name -> (proc, lock fd, port, slot)
    external: Dict[str, Job] = {}  # run by another (orphaned) process
    progress = _Progress(len(jobs), out)
    base_env = job_env(max_parallel, env)


    def finish(name: str, job: Job, reason: str) -> None:
        if job.is_done():
            done.add(name)
        else:
            failed[name] = reason

    with _interrupt_on_signals():
        try:
            while pending or running or external:
                for name, (proc, fd, _, _) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    os.close(fd)
                    del running[name]
                    rc = proc.returncode
                    finish(name, by_name[name],
                           f'exit code {rc}' if rc else 'exited without '
                           'done.json')
                for name, job in list(external.items()):
                    fd = _try_lock(job.lock_path)
                    if fd is None:
                        continue
                    os.close(fd)
                    del external[name]
                    if job.is_done():
                        done.add(name)
                    else:  # the other process died: run it here
                        pending.insert(0, job)
                for job in list(pending):
                    if len(running) + len(external) >= max_parallel:
                        break
                    lost = [n for n in job.needs if n in failed]
                    if lost:
                        pending.remove(job)
                        failed[job.name] = f'needs failed job(s) {lost}'
                        continue
                    if any(n not in done for n in job.needs):
                        continue
                    pending.remove(job)
                    if job.is_done():
                        done.add(job.name)
                        continue
                    fd = _try_lock(job.lock_path)
                    if fd is None:
                        external[job.name] = job
                        continue
                    if job.is_done():  # finished since we looked
                        os.close(fd)
                        done.add(job.name)
                        continue
                    slots = {r[3] for r in running.values()}
                    slot = min(set(range(max_parallel)) - slots)
                    job_port = port + slot if port else _free_port(
                        [r[2] for r in running.values()])
                    one_env = dict(base_env, PORT=str(job_port))
                    # own session: the job's whole process tree can be stopped,
                    # and it outlives a killed sweep (the lock goes with it)
                    proc = subprocess.Popen(
                        ['bash', job.script_path], env=one_env,
                        pass_fds=(fd, ), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)
                    running[job.name] = (proc, fd, job_port, slot)
                progress.update(len(done), len(running) + len(external),
                                len(failed), len(pending))
                if pending and not running and not external and all(
                        any(n not in done for n in j.needs) for j in pending):
                    raise RuntimeError('sweep stuck: pending jobs wait for '
                                       'jobs that are not in the sweep')
                if running or external or pending:
                    time.sleep(poll_interval)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP
            for proc, fd, _, _ in running.values():
                _stop(proc)
                os.close(fd)
            progress.close()
            raise
    progress.close()
    return failed


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate a job's process group, killing it after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_workers(plan: SweepPlan,
                launcher: str = 'pytorch',
                gpus_per_job: int = 1,
                max_parallel: int = 1,
                resume: bool = False,
                port: Optional[int] = None,
                dist_train: str = DIST_TRAIN,
                env: Optional[Dict[str, str]] = None,
                out: Optional[IO] = None,
                poll_interval: float = 0.5,
                max_restarts: int = 3) -> Dict[str, str]:
    """Run the jobs with ``max_parallel`` in-process workers.

    Each worker starts once (``tools/sweep_worker.py``, through
    ``dist_train`` for ``'pytorch'``) and trains jobs until none is left
    (exit status 0; a failed job is recorded in its folder). A worker that
    ends otherwise (``kill -9`` of it or of its torchrun, out of memory) is
    started again once every process of its slot is gone (each carries
    ``SLOT_ENV``; the rest are killed), at most ``max_restarts`` times in a
    row without a job finishing; the job it was running resumes from its
    last checkpoint when ``resume``. The workers watch this process and end
    with it (:mod:`branched_mtl.utils.proc`).

    Args:
        plan: The sweep (files written by :func:`write_jobs`).
        launcher: ``'pytorch'`` or ``'none'``.
        gpus_per_job: Processes per worker.
        max_parallel: Workers.
        resume: Resume unfinished jobs from their newest checkpoint.
        port: First master port (None: free ports).
        dist_train: Launcher script of ``'pytorch'``.
        env: Extra environment of the workers.
        out: Where the progress line goes (default: stdout).
        poll_interval: Seconds between checks.
        max_restarts: Restarts of a worker slot without progress.

    Returns:
        ``{job name: reason}`` of the failed jobs.
    """
    if max_parallel < 1:
        raise ValueError(f'max_parallel must be >= 1, got {max_parallel}')
    out = out or sys.stdout
    run_id = uuid.uuid4().hex
    queue = write_queue(plan, resume, run_id)
    jobs = plan.jobs
    log_dir = osp.join(plan.work_dir, QUEUE_DIR)
    base_env = job_env(max_parallel, env)
    command = worker_command(queue, launcher, gpus_per_job, dist_train)
    progress = _Progress(len(jobs), out)
    procs: Dict[int, subprocess.Popen] = {}
    restarts = {slot: 0 for slot in range(max_parallel)}
    # the workers belong to this process: they watch it and end with it
    base_env[PARENT_ENV] = str(os.getpid())

    def mark(slot: int) -> str:
        return f'{run_id}:{slot}'

    def start(slot: int) -> None:
        job_port = port + slot if port else _free_port([])
        log = open_append(osp.join(log_dir, f'worker{slot}.log'))
        # own session: a worker's process tree (bash, torchrun) is one
        # group, stopped together; its leader dies with this process. The
        # slot's mark reaches what the group does not (torchrun's ranks,
        # each in a session of its own)
        procs[slot] = subprocess.Popen(
            ['bash', '-c', command], env=dict(
                base_env, PORT=str(job_port), **{SLOT_ENV: mark(slot)}),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent)
        log.close()

    def clear(slot: int) -> None:
        """Kill what is left of a slot's worker: never two in a slot. By
        the mark, not the process group: the group's leader is reaped (its
        pid free for reuse), and torchrun's ranks are not in it."""
        left = kill_marked(SLOT_ENV, mark(slot))
        if left:
            raise UserError(
                f'worker {slot} of the sweep cannot be stopped: process(es) '
                f'{left} survive SIGKILL (stuck in the kernel, e.g. on a '
                'dead file system); end them and run the same command again')

    done_before = sum(j.is_done() for j in jobs)
    with _interrupt_on_signals():
        try:
            # no more workers than jobs left to run (none when all are done)
            for slot in range(min(max_parallel, len(jobs) - done_before)):
                start(slot)
            while procs:
                # one look at the job folders per poll
                finished = sum(j.is_done() for j in jobs)
                failed = sum(failed_in_run(j, run_id) is not None
                             for j in jobs if not j.is_done())
                unrun = len(jobs) - finished - failed
                for slot, proc in list(procs.items()):
                    if proc.poll() is None:
                        continue
                    del procs[slot]
                    # what is left of the slot (a rank whose launcher was
                    # killed) goes first: never two workers in one slot
                    clear(slot)
                    if proc.returncode == 0 or not unrun:
                        continue  # it found nothing more to do
                    restarts[slot] = 0 if finished > done_before else \
                        restarts[slot] + 1
                    done_before = finished
                    if restarts[slot] <= max_restarts:
                        out.write(f'[sweep] worker {slot} died (exit code '
                                  f'{proc.returncode}); starting it again\n')
                        start(slot)
                progress.update(finished, len(procs), failed, unrun)
                if procs:
                    time.sleep(poll_interval)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP
            for slot, proc in procs.items():
                _stop(proc)
                # torchrun's ranks (sessions of their own) too
                kill_marked(SLOT_ENV, mark(slot), timeout=5.0)
            progress.close()
            raise
    progress.close()
    return job_failures(jobs, run_id)


def run_sweep(plan: SweepPlan,
              launcher: str = 'pytorch',
              gpus_per_job: int = 1,
              max_parallel: int = 1,
              resume: bool = False,
              port: Optional[int] = None,
              dist_train: str = DIST_TRAIN,
              env: Optional[Dict[str, str]] = None,
              out: Optional[IO] = None,
              exec_mode: str = 'in-process') -> int:
    """Write, run and collect a sweep on this machine.

    Args:
        plan: The sweep.
        launcher: ``'pytorch'`` or ``'none'`` (see :func:`write_jobs`).
        gpus_per_job: Processes per job.
        max_parallel: Concurrent jobs (workers).
        resume: Rerun unfinished jobs from their last checkpoint.
        port: First master port (None: free ports).
        dist_train: Launcher script of ``'pytorch'``.
        env: Extra environment of the jobs.
        out: Where progress and the summary go (default: stdout).
        exec_mode: ``'in-process'`` (``max_parallel`` workers, each
            training job after job in one process) or ``'per-job'`` (a
            process per job, started through ``run.sh``).

    Returns:
        0 when every job is done and the affinity is written, else 1.
    """
    out = out or sys.stdout
    if launcher == 'slurm':
        raise ValueError('use write_slurm for a Slurm cluster')
    if exec_mode not in EXEC_MODES:
        raise ValueError(f'exec mode must be one of {EXEC_MODES}, got '
                         f'{exec_mode!r}')
    write_jobs(plan, launcher, gpus_per_job, resume, dist_train,
               log=lambda line: out.write(line + '\n'))
    todo = sum(not j.is_done() for j in plan.jobs)
    out.write(f'[sweep] {len(plan.jobs)} jobs ({len(plan.stage(0))} '
              f'single-task, {len(plan.stage(1))} recombined, mode '
              f'{plan.mode}), {len(plan.jobs) - todo} already done, '
              f'{max_parallel} at a time ({exec_mode})\n')
    if exec_mode == 'per-job':
        failed = run_jobs(plan.jobs, max_parallel, port, env, out)
    else:
        failed = run_workers(plan, launcher, gpus_per_job, max_parallel,
                             resume, port, dist_train, env, out)
    if failed:
        out.write(f'[sweep] {len(failed)} job(s) failed:\n')
        for name, reason in failed.items():
            job = next(j for j in plan.jobs if j.name == name)
            out.write(f'  {name}: {reason}; log: {job.log_path}\n')
        out.write('[sweep] run the same command again to retry them\n')
        out.flush()
        return 1
    path = collect_sweep(plan)
    out.write(f'[sweep] all {len(plan.jobs)} jobs done; tournament '
              f'affinity -> {path}\n')
    out.flush()
    return 0
