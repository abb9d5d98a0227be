"""Writing a sweep's jobs: each job's config, ``job.json`` and ``run.sh``
(the per-job launch), and the queue the in-process workers run."""
import copy
import hashlib
import os
import os.path as osp
import re
import shlex
import shutil
import sys
import time
from typing import Callable, Optional

from branched_mtl.utils.config import result_settings
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import (dump_json_atomic, open_append,
                                   write_text_atomic)
from branched_mtl.utils.lock import try_lock
from branched_mtl.utils.package import tools_dir
from .plan import Job, SweepPlan, read_json

LAUNCHERS = ('pytorch', 'none', 'slurm')
# the installation's tools (branched_mtl/.mim/tools, or the checkout's),
# so that a regular `pip install .` runs sweeps too
TOOLS = tools_dir()
DIST_TRAIN = osp.join(TOOLS, 'dist_train.sh')
TRAIN_PY = osp.join(TOOLS, 'train.py')
WORKER_PY = osp.join(TOOLS, 'sweep_worker.py')
EXEC_MODES = ('in-process', 'per-job')


def _launch_command(job: Job, launcher: str, gpus_per_job: int,
                    dist_train: str, train_py: str) -> str:
    q = shlex.quote
    common = f'{q(job.config_path)} --work-dir {q(job.job_dir)} $RESUME'
    if launcher == 'pytorch':
        cmd = f'bash {q(dist_train)} {q(job.config_path)} {gpus_per_job} ' \
              f'--work-dir {q(job.job_dir)} $RESUME'
        import torch
        if not torch.cuda.is_available():
            # nccl needs GPUs; gloo runs the same DDP code on the CPU
            cmd += ' --cfg-options env_cfg.dist_cfg.backend=gloo'
        return f'PYTHON="${{PYTHON:-{sys.executable}}}" {cmd}'
    if launcher == 'none':
        return f'"${{PYTHON:-{sys.executable}}}" {q(train_py)} {common}'
    if launcher == 'slurm':
        # tools/slurm_train.sh conventions, inside the array job's
        # allocation: srun starts one task per GPU
        return ('srun --kill-on-bad-exit=1 ${SRUN_ARGS:-} '
                f'"${{PYTHON:-python}}" -u {q(train_py)} {common} '
                '--launcher=slurm')
    raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                     f'{launcher!r}')


def worker_command(queue: str, launcher: str, gpus_per_job: int,
                   dist_train: str = DIST_TRAIN,
                   stage: Optional[int] = None) -> str:
    """The shell command that starts one in-process worker of a sweep.

    Args:
        queue: The queue file.
        launcher: ``'pytorch'`` (through ``dist_train.sh``), ``'none'`` or
            ``'slurm'`` (``srun``, inside an allocation).
        gpus_per_job: Processes (GPUs) of the worker; each job uses all.
        dist_train: The launcher script of ``'pytorch'``.
        stage: Run only this stage's jobs.

    Returns:
        The command (bash).
    """
    q = shlex.quote
    stage_arg = f' --stage {stage}' if stage is not None else ''
    if launcher == 'pytorch':
        return (f'TRAIN_SCRIPT={q(WORKER_PY)} '
                f'PYTHON="${{PYTHON:-{sys.executable}}}" bash {q(dist_train)} '
                f'{q(queue)} {gpus_per_job}{stage_arg}')
    if launcher == 'none':
        return (f'"${{PYTHON:-{sys.executable}}}" {q(WORKER_PY)} '
                f'{q(queue)}{stage_arg}')
    if launcher == 'slurm':
        return ('srun --kill-on-bad-exit=1 ${SRUN_ARGS:-} '
                f'"${{PYTHON:-python}}" -u {q(WORKER_PY)} {q(queue)}'
                f'{stage_arg} '
                '--launcher=slurm')
    raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                     f'{launcher!r}')


_SCRIPT = """#!/usr/bin/env bash
# Job {name} of a recombination sweep (tools/sweep_recombination.py).
# Idempotent: a finished job (done.json) exits at once; otherwise it trains
# {how}, and writes done.json last, after the affinity probe.
JOB_DIR={job_dir}
if [ -f "$JOB_DIR/done.json" ]; then exit 0; fi
cd {cwd} || exit 1
now() {{ date -u +%Y-%m-%dT%H:%M:%SZ; }}
echo "start $(now) pid=$$" >> "$JOB_DIR/attempts.log"
rm -f "$JOB_DIR/affinity_probe/meta.json"
RESUME=
# any numbered checkpoint counts: a kill between writing iter_N.pth and
# updating last_checkpoint must not retrain the job from scratch
if [ {resume} = 1 ] && {{ [ -s "$JOB_DIR/last_checkpoint" ] ||
        compgen -G "$JOB_DIR/iter_*.pth" > /dev/null; }}; then
    RESUME=--resume
fi
echo "===== attempt $(now) $RESUME" >> "$JOB_DIR/train.log"
{command} >> "$JOB_DIR/train.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    echo "fail $(now) rc=$rc" >> "$JOB_DIR/attempts.log"
    exit $rc
fi
if [ ! -f "$JOB_DIR/affinity_probe/meta.json" ]; then
    echo "training ended without affinity_probe/meta.json" \\
        >> "$JOB_DIR/train.log"
    echo "fail $(now) no-probe" >> "$JOB_DIR/attempts.log"
    exit 3
fi
"${{PYTHON:-{python}}}" - "$JOB_DIR" {name_q} <<'EOF' || exit 4
import datetime, json, os, sys
job_dir, name = sys.argv[1], sys.argv[2]
done = dict(job=name, work_dir=job_dir,
            probe=os.path.join(job_dir, 'affinity_probe'),
            finished=datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec='seconds'))
tmp = os.path.join(job_dir, '.done.json.%d.tmp' % os.getpid())
with open(tmp, 'w') as f:
    f.write(json.dumps(done, indent=2) + '\\n')
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, os.path.join(job_dir, 'done.json'))
EOF
echo "done $(now)" >> "$JOB_DIR/attempts.log"
"""


def _job_script(job: Job, command: str, resume: bool, cwd: str,
                python: str) -> str:
    q = shlex.quote
    return _SCRIPT.format(
        name=job.name, name_q=q(job.name), job_dir=q(job.job_dir),
        cwd=q(cwd), resume=int(resume), command=command, python=python,
        how='resuming from its last checkpoint when there is one'
        if resume else 'from scratch')


def config_digest(plan: SweepPlan, text: str) -> str:
    """The sha256 of a job's config text with the sweep's own folders
    (``plan.work_dir`` and the single-task runs it reads, as given and as
    resolved) replaced by placeholders: where a sweep lies is not what it
    computes."""
    roots = [(plan.work_dir, '{SWEEP}')]
    if plan.single_task_dir:
        roots.append((plan.single_task_dir, '{SINGLE_TASK}'))
    for root, mark in roots:
        for form in dict.fromkeys((osp.abspath(root), osp.realpath(root))):
            text = text.replace(form.rstrip('/') + '/', mark + '/')
            text = re.sub(re.escape(form.rstrip('/')) + r"(?=['\"])", mark,
                          text)
    return hashlib.sha256(text.encode()).hexdigest()


def digest_text(cfg, text: str) -> str:
    """A job's config as the digest reads it: without the ``branch``
    settings that only change how fast the sweep runs (``max_parallel``,
    ...), so that a sweep resumed with more or fewer jobs side by side
    keeps its finished and its killed jobs.

    Args:
        cfg: The job's config.
        text: Its text (``cfg.pretty_text``), returned as it is when
            ``branch`` holds no run-only setting (rendering a config
            again is the slow part).

    Returns:
        Its text with ``branch`` cleaned by
        :func:`branched_mtl.utils.config.result_settings`.
    """
    branch = cfg.get('branch')
    cleaned = result_settings(branch)
    if cleaned == branch:
        return text
    cfg = copy.deepcopy(cfg)
    cfg.branch = cleaned
    return cfg.pretty_text


def _read_meta(path: str) -> dict:
    """A job's ``job.json``, or {} when missing or unreadable."""
    try:
        meta = read_json(path)
    except (OSError, ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _clear_job(job: Job, why: str, log: Callable[[str], None]) -> None:
    """Remove what a killed run left in a job's folder (checkpoints, probe,
    records), keeping its lock file and logs; under the job's lock."""
    if not osp.isdir(job.job_dir):
        return
    keep = {'.lock', 'train.log', 'attempts.log', osp.basename(
        job.meta_path)}
    left = [e for e in os.listdir(job.job_dir) if e not in keep]
    if not left:
        return
    fd = try_lock(job.lock_path)
    if fd is None:
        raise UserError(
            f'job {job.name} must be cleared ({why}), but another process '
            f'runs it ({job.lock_path} is locked); stop it and run the same '
            'command again')
    try:
        for entry in left:
            full = osp.join(job.job_dir, entry)
            if osp.isdir(full) and not osp.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
    finally:
        os.close(fd)
    with open_append(job.attempts_path) as f:
        f.write(f'cleared {time.strftime("%Y-%m-%dT%H:%M:%S")}: {why}\n')
    log(f'[sweep] {job.name}: {why}; its unfinished run was cleared and '
        'starts again (resuming it would mix two runs)')


def _has_probe(job: Job) -> bool:
    """Whether a job's affinity probe (what the sweep collects) is there."""
    return osp.isfile(osp.join(job.job_dir, 'affinity_probe', 'meta.json'))


def write_jobs(plan: SweepPlan,
               launcher: str = 'pytorch',
               gpus_per_job: int = 1,
               resume: bool = False,
               dist_train: str = DIST_TRAIN,
               train_py: str = TRAIN_PY,
               cwd: Optional[str] = None,
               log: Optional[Callable[[str], None]] = None) -> None:
    """Write every job's ``config.py`` and ``run.sh``.

    A finished job keeps its files; if its config would now differ (other
    options than the run that finished it, as recorded by the config digest
    in its ``job.json``), this is an error rather than a silent mix of two
    sweeps. An unfinished job whose digest differs (a killed job, rerun
    with another seed or options) is cleared, so that it is not resumed;
    a refused sweep clears and writes nothing.
    The digest leaves out where the sweep lies (:func:`config_digest`): a
    sweep moved, copied or reached through a link is the same sweep; and
    the run-only settings (:func:`digest_text`): a sweep resumed with
    another ``max_parallel`` is the same sweep.

    Args:
        plan: The sweep.
        launcher: ``'pytorch'`` (``tools/dist_train.sh``), ``'none'``
            (``tools/train.py``, one process) or ``'slurm'`` (``srun``).
        gpus_per_job: Processes (GPUs) per job.
        resume: Rerun unfinished jobs from their last checkpoint.
        dist_train: The launcher script of ``'pytorch'``.
        train_py: The training script.
        cwd: Working directory of the jobs (default: the current one).
        log: Where the reason for clearing a job goes (default: nowhere).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{launcher!r}')
    if launcher == 'none' and gpus_per_job != 1:
        raise ValueError('launcher none runs one process per job; use '
                         'pytorch for --gpus-per-job > 1')
    cwd = osp.abspath(cwd or os.getcwd())
    log = log or (lambda line: None)
    # first every job's record against these options; a refused sweep
    # stops before it clears or writes anything (a killed job of the
    # recorded sweep keeps its run)
    checked, clashes = [], []
    for job in plan.jobs:
        text = job.cfg.pretty_text
        # the Runner dumps its own copy over config.py, so a job is
        # recognised by the digest of the config the sweep wrote
        digest = config_digest(plan, digest_text(job.cfg, text))
        old = _read_meta(job.meta_path)
        recorded = old.get('config_sha256')
        # sweeps written before the digest left the run-only settings out
        # (then also the location)
        same = recorded == digest or recorded in (
            config_digest(plan, text),
            hashlib.sha256(text.encode()).hexdigest())
        if not same and job.is_done() and _has_probe(job):
            clashes.append(job.name)
        checked.append((job, text, digest, old, same))
    if clashes:
        raise ValueError(
            f'{len(clashes)} finished job(s) of {plan.work_dir} were run with '
            f'another config than these options give, e.g. {clashes[:3]}; '
            'use another --work-dir (or delete those jobs) instead of mixing '
            'two sweeps')
    for job, text, digest, old, same in checked:
        if job.is_done() and not _has_probe(job):
            # its probe was deleted: the affinity cannot be collected, so
            # the job runs again (its done.json is kept aside, not deleted)
            aside = f'{job.done_path}.{time.strftime("%Y%m%d%H%M%S")}'
            os.replace(job.done_path, aside)
            log(f'[sweep] {job.name}: done.json without its affinity_probe/'
                f'meta.json; it runs again (the record is kept as {aside})')
        if job.is_done():
            if old.get('config_sha256') != digest:
                # an older sweep's record, matched with unchanged options:
                # written again in the current form, so that a later
                # resume with other run-only settings keeps this job too
                dump_json_atomic(dict(old, config_sha256=digest),
                                 job.meta_path)
            continue
        if not same:
            # job.json is written before a job first starts: a killed job
            # of another config (seed, options) is cleared, never resumed
            _clear_job(job, 'no record of the config it started with'
                       if not old else 'it started with another config '
                       '(seed, --cfg-options or sweep options)', log)
        os.makedirs(job.job_dir, exist_ok=True)
        write_text_atomic(text, job.config_path)
        dump_json_atomic(
            dict(job=job.name, stage=job.stage, needs=list(job.needs),
                 config_sha256=digest, **job.info), job.meta_path)
        command = _launch_command(job, launcher, gpus_per_job, dist_train,
                                  train_py)
        # on a cluster the jobs' python is whatever PYTHON / PATH say there
        python = 'python' if launcher == 'slurm' else sys.executable
        write_text_atomic(
            _job_script(job, command, resume, cwd, python), job.script_path)
