"""In-process sweep workers: one process trains many jobs, one after another.

A recombined run of a small sweep trains for seconds, while starting its
process (torchrun, importing torch and OpenMMLab, building a Runner) takes
far longer. A worker pays the start-up once: the sweep starts one worker
per launch slot (``--max-parallel`` on a machine, one per array task on
Slurm), through ``tools/dist_train.sh`` / torchrun or ``srun`` as for a
job, and each worker claims the jobs of the queue in turn.

The files are those of a per-job sweep (``done.json``, ``attempts.log``,
``train.log``, resume from the newest checkpoint), and so are the rules:

* a worker claims a job by taking its lock (``flock`` on ``.lock``), so two
  workers, or a worker and an orphan of a killed sweep, never run it twice;
* a failed job is recorded (``failed.json``, with the sweep run's id, and
  the traceback in its ``train.log``) and the worker goes on with the
  others; the next sweep run tries it again;
* a worker killed with ``-9`` loses only the job it was running: its lock
  goes with the process, and that job is resumed from its last checkpoint
  by whichever worker claims it next (``--resume``).
"""
import contextlib
import datetime
import gc
import glob
import os
import os.path as osp
import sys
import time
import traceback
import uuid
from typing import IO, Dict, List, Optional, Tuple, Union

from branched_mtl.utils.io import dump_json_atomic, open_append
from branched_mtl.utils.lock import try_lock
from .plan import Job, SweepPlan, read_json

QUEUE_DIR = 'workers'
FAILED_FILE = 'failed.json'


def queue_path(work_dir: str) -> str:
    """Where the sweep writes the queue its workers run."""
    return osp.join(work_dir, QUEUE_DIR, 'queue.json')


def write_queue(plan: SweepPlan, resume: bool,
                run_id: Optional[str] = None) -> str:
    """Write the queue of every job of ``plan`` for in-process workers.

    Args:
        plan: The sweep (its jobs' files written by ``write_jobs``).
        resume: Resume unfinished jobs from their newest checkpoint.
        run_id: Id of this sweep run: a job that failed in this run is not
            tried again by it (default: a new id).

    Returns:
        Path of the queue file.
    """
    path = queue_path(plan.work_dir)
    dump_json_atomic(
        dict(run_id=run_id or uuid.uuid4().hex, resume=bool(resume),
             jobs=[dict(name=j.name, stage=j.stage, job_dir=j.job_dir,
                        needs=list(j.needs)) for j in plan.jobs]), path)
    return path


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


def _append(path: str, line: str) -> None:
    with open_append(path) as f:
        f.write(line + '\n')


def failed_in_run(job: Job, run_id: str) -> Optional[str]:
    """Why ``job`` failed in the sweep run ``run_id``, or None."""
    path = osp.join(job.job_dir, FAILED_FILE)
    if not osp.isfile(path):
        return None
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if record.get('run_id') != run_id:
        return None
    return record.get('reason', 'failed')


def _mark_failed(job: Job, run_id: str, reason: str) -> None:
    os.makedirs(job.job_dir, exist_ok=True)
    dump_json_atomic(dict(job=job.name, run_id=run_id, reason=reason,
                          time=_now()), osp.join(job.job_dir, FAILED_FILE))


def _mark_done(job: Job) -> None:
    # the same record run.sh writes
    dump_json_atomic(
        dict(job=job.name, work_dir=job.job_dir,
             probe=osp.join(job.job_dir, 'affinity_probe'),
             finished=datetime.datetime.now(datetime.timezone.utc)
             .isoformat(timespec='seconds')), job.done_path)


def _has_checkpoint(job_dir: str) -> bool:
    last = osp.join(job_dir, 'last_checkpoint')
    return (osp.isfile(last) and osp.getsize(last) > 0) or bool(
        glob.glob(osp.join(job_dir, 'iter_*.pth')))


def claim(jobs: List[Job], run_id: str, stage: Optional[int] = None
          ) -> Union[None, str, Tuple[Job, int]]:
    """The next job this worker may run, with the fd of its lock.

    Args:
        jobs: Every job of the sweep (needs are looked up among them).
        run_id: This sweep run's id.
        stage: Claim only jobs of this stage (Slurm runs stages apart).

    Returns:
        ``(job, lock fd)``; ``'wait'`` when no job is free now but some
        are still running elsewhere or wait for jobs that are; None when
        every job is done or failed in this run.
    """
    by_name = {j.name: j for j in jobs}
    waiting = False
    for job in jobs:
        if (stage is not None and job.stage != stage) or job.is_done():
            continue
        if failed_in_run(job, run_id) is not None:
            continue
        needs = [by_name[n] for n in job.needs if n in by_name]
        lost = [n.name for n in needs if failed_in_run(n, run_id)]
        if lost:
            _mark_failed(job, run_id, f'needs failed job(s) {lost}')
            continue
        if not all(n.is_done() for n in needs):
            waiting = True
            continue
        os.makedirs(job.job_dir, exist_ok=True)
        fd = try_lock(job.lock_path)
        if fd is None:  # another worker, or an orphan of a killed sweep
            waiting = True
            continue
        if job.is_done() or failed_in_run(job, run_id) is not None:
            os.close(fd)  # finished (or failed) since we looked
            continue
        return job, fd
    return 'wait' if waiting else None


def release_mmengine_state(name: str) -> None:
    """Forget the logger, message hub, visualizer and scope of the run
    named ``name``: mmengine keeps them per name for the process's life,
    and a worker would otherwise keep every finished job's."""
    from mmengine.utils import ManagerMixin
    todo = [ManagerMixin]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        instances = cls.__dict__.get('_instance_dict')
        if not instances or name not in instances:
            continue
        instance = instances.pop(name)
        for handler in list(getattr(instance, 'handlers', [])):
            # MMLogger: close its log file
            instance.removeHandler(handler)
            handler.close()


@contextlib.contextmanager
def _output_to(path: str):
    """Python-level stdout and stderr into ``path`` (a job's train.log)."""
    with open_append(path, buffering=1) as log:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(
                log):
            yield log


def run_job(job: Job,
            run_id: str,
            resume: bool,
            launcher: str = 'none',
            cfg_options: Optional[dict] = None,
            experiment_name: Optional[str] = None,
            writer: bool = True) -> Optional[str]:
    """Train one job in this process and record the outcome.

    Args:
        job: The job (its ``config.py`` written).
        run_id: This sweep run's id (recorded with a failure).
        resume: Resume from the job's newest checkpoint if it has one.
        launcher: The worker's launcher (``none``, ``pytorch``, ``slurm``).
        cfg_options: Overrides applied to the job's config.
        experiment_name: Name of the job's logger and message hub, unique
            in this process (default: from the job's name and time).
        writer: Write the job's records (rank 0 of a multi-process job).

    Returns:
        None when the job is done, else why it failed.
    """
    from branched_mtl.apis.runner import load_config, train
    from branched_mtl.utils.errors import UserError
    probe_meta = osp.join(job.job_dir, 'affinity_probe', 'meta.json')
    resuming = resume and _has_checkpoint(job.job_dir)
    if writer:
        _append(job.attempts_path,
                f'start {_now()} pid={os.getpid()} in-process')
        if osp.isfile(probe_meta):
            os.remove(probe_meta)
    name = experiment_name or (
        f'{job.name.replace("/", "_")}_{time.strftime("%Y%m%d_%H%M%S")}')
    reason = None
    with _output_to(job.log_path) as log:
        log.write(f'===== attempt {_now()} {"--resume" if resuming else ""}'
                  f' (in-process worker pid {os.getpid()})\n')
        try:
            cfg = load_config(job.config_path, job.job_dir, cfg_options,
                              launcher, resume=resuming)
            cfg.experiment_name = name
            train(cfg)
        except (Exception, SystemExit) as e:  # noqa: B902 (go on with others)
            traceback.print_exc(file=log)
            kind = 'error' if isinstance(e, UserError) else type(e).__name__
            reason = f'{kind}: {str(e).splitlines()[0] if str(e) else ""}'
        finally:
            release_mmengine_state(name)
            gc.collect()
    if reason is None and not osp.isfile(probe_meta):
        reason = 'training ended without affinity_probe/meta.json'
    if writer:
        if reason is None:
            _mark_done(job)
            _append(job.attempts_path, f'done {_now()}')
        else:
            _mark_failed(job, run_id, reason)
            _append(job.attempts_path, f'fail {_now()} {reason}')
    return reason


def _world() -> Tuple[int, int]:
    """This process's rank and the number of processes of one job."""
    for rank, size in (('RANK', 'WORLD_SIZE'),
                       ('SLURM_PROCID', 'SLURM_NTASKS')):
        if size in os.environ:
            return int(os.environ.get(rank, 0)), int(os.environ[size])
    return 0, 1


def _init_group(launcher: str) -> None:
    """One process group for all jobs of a multi-process worker (the
    Runner of each job finds it and skips its own init)."""
    import torch
    from mmengine.config import Config
    from mmengine.dist import init_dist

    from branched_mtl.utils import prepare_cpu_distributed
    if torch.distributed.is_initialized():
        return
    prepare_cpu_distributed(Config(dict(launcher=launcher)))
    if not torch.distributed.is_initialized():  # CUDA
        init_dist(launcher)


def run_worker(queue: str,
               launcher: str = 'none',
               cfg_options: Optional[dict] = None,
               stage: Optional[int] = None,
               poll_interval: float = 0.5,
               out: Optional[IO] = None) -> int:
    """Run jobs of a queue in this process until none is left.

    Args:
        queue: The queue file of :func:`write_queue`.
        launcher: ``none`` (one process per job), ``pytorch`` or ``slurm``
            (every process of the worker trains each job together).
        cfg_options: Overrides applied to every job's config.
        stage: Run only this stage's jobs.
        poll_interval: Seconds between looks while jobs wait for others.
        out: Where the worker's one line per job goes (default: stdout).

    Returns:
        0 when the worker found nothing more to do, 1 if a job it ran
        failed (0 as well when a local sweep started it: any other status
        there means the worker died).
    """
    from branched_mtl.compat import format_configs
    from branched_mtl.utils.proc import watch_parent
    out = out or sys.stdout
    # started by a sweep on this machine: end with it (kill -9 included)
    local = watch_parent() is not None
    format_configs(False)  # see format_configs: yapf costs a short job dear
    spec = read_json(queue)
    # a Slurm resubmission is a new run: retry what failed in the last one
    run_id = os.environ.get('SLURM_ARRAY_JOB_ID', spec['run_id'])
    jobs = [Job(j['name'], j['stage'], j['job_dir'], needs=tuple(j['needs']))
            for j in spec['jobs']]
    by_name = {j.name: j for j in jobs}
    rank, world = _world()
    if world > 1:
        _init_group(launcher)
    failures = 0
    count = 0
    while True:
        choice = claim(jobs, run_id, stage) if rank == 0 else None
        if world > 1:
            from mmengine.dist import broadcast_object_list
            message = [choice[0].name if isinstance(choice, tuple) else
                       choice]
            broadcast_object_list(message, src=0)
            name = message[0]
        else:
            name = choice[0].name if isinstance(choice, tuple) else choice
        if name is None:
            break
        if name == 'wait':
            time.sleep(poll_interval)
            continue
        job, count = by_name[name], count + 1
        start = time.monotonic()
        try:
            reason = run_job(
                job, run_id, spec.get('resume', False), launcher,
                cfg_options, f'{job.name.replace("/", "_")}_'
                f'{os.getpid()}_{count}', writer=rank == 0)
        finally:
            if rank == 0:
                os.close(choice[1])
        if count == 1:
            # what outlives the first job is the process's own (modules,
            # registries, caches): keep it out of every later job's
            # collection, which otherwise walks it all (0.5 s a job)
            gc.freeze()
        if rank == 0:
            failures += reason is not None
            out.write(f'[worker {os.getpid()}] {job.name}: '
                      f'{"done" if reason is None else "FAILED " + reason}'
                      f' ({time.monotonic() - start:.1f} s)\n')
            out.flush()
    return 1 if failures and not local else 0


def job_failures(jobs: List[Job], run_id: str) -> Dict[str, str]:
    """``{job name: why}`` for the jobs that are not done after a run."""
    return {
        j.name: failed_in_run(j, run_id) or 'not run (a worker crashed; '
        f'see {osp.join(osp.dirname(osp.dirname(j.job_dir)), QUEUE_DIR)})'
        for j in jobs if not j.is_done()
    }
