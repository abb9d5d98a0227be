"""The recombination sweep (Step 2 of the method) as restartable jobs.

A sweep directory holds one folder per job::

    DIR/single_task/<task>/              stage 0: single-task runs (unless
                                         --single-task-dir gives them)
    DIR/jobs/<target>__from_<source>__split<l>/   stage 1, per-pair mode
    DIR/jobs/shared__from_<source>__split<l>/     stage 1, shared-bottom mode
    DIR/workers/queue.json, worker<k>.log  the in-process workers' queue
    DIR/affinity_tournament.json         Step 3, once every job is done

Each job folder is the run's mmengine work dir and holds ``config.py``,
``job.json`` (what the job is, and its config's digest), ``run.sh`` (the
job, idempotent), ``train.log``, ``attempts.log`` (one
``start`` line per attempt, one ``done`` line when it finished) and, last,
``done.json``, written atomically after the AffinityHook's probe. Jobs run
either in-process (the default: ``--max-parallel`` workers, each started
once and training job after job, see :mod:`.worker`) or one process per
job (``run.sh``; ``--exec per-job``). A job with ``done.json`` is never run again; any other job is run
again from scratch (or from its last checkpoint with ``resume``). A job is
locked (``flock`` on ``.lock``) by the process that runs it (a per-job
``run.sh`` passes the lock on to the job's processes): when the sweep is killed and started again
while an orphaned job (or worker) still runs, the new sweep waits for it
instead of running it twice.

Modules: :mod:`.plan` (which jobs), :mod:`.jobs` (their files and
launch commands), :mod:`.local` (running them on this machine),
:mod:`.worker` (in-process workers), :mod:`.slurm` (array scripts),
:mod:`.collect` (the tournament affinity).
"""
from .collect import collect_sweep
from .jobs import (DIST_TRAIN, EXEC_MODES, LAUNCHERS, TRAIN_PY,
                   _job_script, worker_command, write_jobs)  # noqa: F401
from .local import job_env, run_jobs, run_sweep, run_workers
from .worker import run_worker, write_queue
from .plan import (AFFINITY_FILE, MODES, Job, SweepPlan, describe_plan,
                   load_plan_config, parse_splits, plan_sweep, read_json)
from .slurm import write_slurm

__all__ = [
    'Job', 'SweepPlan', 'plan_sweep', 'parse_splits', 'write_jobs',
    'run_jobs', 'run_sweep', 'collect_sweep', 'write_slurm', 'MODES',
    'LAUNCHERS', 'DIST_TRAIN', 'TRAIN_PY', 'AFFINITY_FILE',
    'describe_plan', 'load_plan_config', 'read_json', 'EXEC_MODES',
    'run_workers', 'run_worker', 'write_queue', 'worker_command', 'job_env'
]
