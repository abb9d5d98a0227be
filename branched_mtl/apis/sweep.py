"""The recombination sweep (Step 2 of the method) as restartable jobs.

A sweep directory holds one folder per job::

    DIR/single_task/<task>/              stage 0: single-task runs (unless
                                         --single-task-dir gives them)
    DIR/jobs/<target>__from_<source>__split<l>/   stage 1, per-pair mode
    DIR/jobs/shared__from_<source>__split<l>/     stage 1, shared-bottom mode
    DIR/affinity_tournament.json         Step 3, once every job is done

Each job folder is the run's mmengine work dir and holds ``config.py``,
``job.json`` (what the job is, and its config's digest), ``run.sh`` (the
job, idempotent), ``train.log``, ``attempts.log`` (one
``start`` line per attempt, one ``done`` line when it finished) and, last,
``done.json``, written atomically by ``run.sh`` after the AffinityHook's
probe. A job with ``done.json`` is never run again; any other job is run
again from scratch (or from its last checkpoint with ``resume``). A job is
locked (``flock`` on ``.lock``) by the process that runs it, and the lock is
inherited by the job's processes: when the sweep is killed and started again
while an orphaned job still runs, the new sweep waits for it instead of
running it twice.
"""
import copy
import datetime
import fcntl
import hashlib
import json
import os
import os.path as osp
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from branched_mtl.utils.io import dump_json_atomic, write_text_atomic
from .configs import (add_affinity_hook, config_tasks, disable_validation,
                      encoder_block_names,
                      recombined_config, resolve_tasks_arg,
                      set_data_fraction, set_train_iters,
                      shared_bottom_config, single_task_config)

__all__ = [
    'Job', 'SweepPlan', 'plan_sweep', 'parse_splits', 'write_jobs',
    'run_jobs', 'run_sweep', 'collect_sweep', 'write_slurm', 'MODES',
    'LAUNCHERS'
]

MODES = ('per-pair', 'shared-bottom')
LAUNCHERS = ('pytorch', 'none', 'slurm')
AFFINITY_FILE = 'affinity_tournament.json'
_SAFE_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')
_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIST_TRAIN = osp.join(_REPO, 'tools', 'dist_train.sh')
TRAIN_PY = osp.join(_REPO, 'tools', 'train.py')


@dataclass
class Job:
    """One training run of the sweep.

    Attributes:
        name: Unique name (``single_task/<task>`` or the folder name in
            ``jobs/``).
        stage: 0 for single-task runs, 1 for recombined runs.
        job_dir: The run's work dir.
        cfg: The run's config.
        needs: Names of the jobs whose checkpoints this one loads.
        info: ``task`` or ``target``/``source``/``split`` (for listings).
    """
    name: str
    stage: int
    job_dir: str
    cfg: Optional[Config] = field(default=None, repr=False)
    needs: Tuple[str, ...] = ()
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> str:
        return osp.join(self.job_dir, 'config.py')

    @property
    def script_path(self) -> str:
        return osp.join(self.job_dir, 'run.sh')

    @property
    def meta_path(self) -> str:
        return osp.join(self.job_dir, 'job.json')

    @property
    def done_path(self) -> str:
        return osp.join(self.job_dir, 'done.json')

    @property
    def log_path(self) -> str:
        return osp.join(self.job_dir, 'train.log')

    @property
    def attempts_path(self) -> str:
        return osp.join(self.job_dir, 'attempts.log')

    @property
    def lock_path(self) -> str:
        return osp.join(self.job_dir, '.lock')

    def is_done(self) -> bool:
        return osp.isfile(self.done_path)


@dataclass
class SweepPlan:
    """Every job of a sweep, in the order they may run.

    Attributes:
        work_dir: The sweep directory.
        tasks: The N tasks, in affinity order.
        splits: The swept split locations l (frozen blocks, 1..L).
        block_names: Names of the encoder's L blocks.
        mode: ``'per-pair'`` or ``'shared-bottom'``.
        jobs: Stage 0 jobs first, then stage 1.
    """
    work_dir: str
    tasks: List[str]
    splits: List[int]
    block_names: List[str]
    mode: str
    jobs: List[Job]

    def stage(self, stage: int) -> List[Job]:
        return [j for j in self.jobs if j.stage == stage]

    @property
    def affinity_path(self) -> str:
        return osp.join(self.work_dir, AFFINITY_FILE)


def parse_splits(value: Union[None, str, Sequence], block_names: List[str]
                 ) -> List[int]:
    """``'1,3'`` or ``'layer1,layer3'`` -> sorted split numbers.

    Args:
        value: Split numbers (frozen blocks, 1..L) or block names; None
            means every split.
        block_names: The encoder's block names, shallow to deep.

    Returns:
        Sorted, unique split numbers.
    """
    num = len(block_names)
    if value is None:
        return list(range(1, num + 1))
    items = value.split(',') if isinstance(value, str) else list(value)
    splits = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item in block_names:
            splits.append(block_names.index(item) + 1)
        elif item.isdigit() and 1 <= int(item) <= num:
            splits.append(int(item))
        else:
            raise ValueError(
                f'split {item!r}: give the number of frozen blocks (1..{num})'
                f' or a block name {block_names}')
    if not splits:
        raise ValueError('no split given')
    if len(set(splits)) != len(splits):
        raise ValueError(f'split given twice: {items}')
    return sorted(splits)


def _check_checkpoint(st_cfg: Config, path: str, task: str) -> str:
    """Resolve ``path`` and check it is ``task``'s single-task model of
    this config (same tensors, same shapes); errors name the file."""
    import torch  # noqa: F401  (compat allow-lists mmengine's types)

    from branched_mtl.engine.hooks.recombination_hook import (
        _check_single_task, load_state_dict_file, resolve_checkpoint)
    from branched_mtl.registry import build_stock
    try:
        file = resolve_checkpoint(path)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f'single-task run of {task!r}: {e}') from e
    state = load_state_dict_file(file)
    _check_single_task(state, file, task)
    model = build_stock(st_cfg.model)
    own = {k: v.shape for k, v in model.state_dict().items()
           if not k.startswith('data_preprocessor.')}
    theirs = {k: v.shape for k, v in state.items()
              if not k.startswith('data_preprocessor.')}
    missing = sorted(set(own) - set(theirs))
    extra = sorted(set(theirs) - set(own))
    shapes = [k for k in set(own) & set(theirs) if own[k] != theirs[k]]
    if missing or extra or shapes:
        raise ValueError(
            f'{file} does not fit the single-task model of {task!r} of this '
            f'config: missing {missing[:3]}, unexpected {extra[:3]}, other '
            f'shapes {shapes[:3]}')
    return osp.abspath(file)


def _train_len(cfg: Config) -> int:
    from mmengine.registry import init_default_scope

    from branched_mtl.registry import DATASETS, build_stock
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    return len(build_stock(copy.deepcopy(cfg.train_dataloader.dataset),
                           DATASETS))


def plan_sweep(cfg: Config,
               work_dir: str,
               tasks: Union[None, str, Sequence[str]] = None,
               splits: Union[None, str, Sequence] = None,
               mode: str = 'per-pair',
               single_task_dir: Optional[str] = None,
               iters: Optional[int] = None,
               data_fraction: Optional[float] = None,
               probe_samples: int = 64,
               probe_seed: int = 0,
               validate: bool = False) -> SweepPlan:
    """Turn a multi-task config into the jobs of a recombination sweep.

    Args:
        cfg: The multi-task config (with any ``--cfg-options`` merged).
        work_dir: The sweep directory.
        tasks: Tasks to sweep (default: all of the config's).
        splits: Split locations (see :func:`parse_splits`; default all).
        mode: ``'per-pair'`` (one job per (target, source, split), as in
            the paper) or ``'shared-bottom'`` (one job per (source, split)
            training every target on one frozen bottom).
        single_task_dir: Folder with one finished single-task run per task
            (``<dir>/<task>/`` with ``last_checkpoint``); None trains them
            as stage 0 jobs.
        iters: Training iterations of the recombined runs (default: the
            config's schedule), the schedule scaled to fit.
        data_fraction: Fraction of the training set the recombined runs use.
        probe_samples: K, held-out samples of the AffinityHook.
        probe_seed: Seed of the K samples.
        validate: Keep the validation loop in recombined runs.

    Returns:
        The plan.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    tasks = resolve_tasks_arg(tasks, cfg)
    bad = [t for t in tasks if not _SAFE_NAME.match(t)]
    if bad:
        raise ValueError(f'task names {bad} cannot name job folders')
    if len(tasks) < 2:
        raise ValueError(f'a sweep needs at least 2 tasks, got {tasks}')
    block_names = encoder_block_names(cfg)
    splits = parse_splits(splits, block_names)
    work_dir = osp.abspath(work_dir)
    probe = dict(dataset='val', num_samples=probe_samples, seed=probe_seed)

    jobs: List[Job] = []
    ckpt: Dict[str, str] = {}
    needs: Dict[str, str] = {}
    for task in tasks:
        st_cfg = single_task_config(cfg, task)
        if single_task_dir is not None:
            ckpt[task] = _check_checkpoint(
                st_cfg, osp.join(single_task_dir, task), task)
            continue
        job_dir = osp.join(work_dir, 'single_task', task)
        add_affinity_hook(st_cfg, **probe)
        st_cfg.work_dir = job_dir
        name = f'single_task/{task}'
        jobs.append(Job(name, 0, job_dir, st_cfg, info=dict(task=task)))
        # resolved through last_checkpoint when the recombined run starts
        ckpt[task] = job_dir
        needs[task] = name

    fraction_len = None
    if data_fraction is not None and data_fraction != 1:
        if not 0 < data_fraction <= 1:
            raise ValueError(f'data fraction must be in (0, 1], got '
                             f'{data_fraction}')
        fraction_len = _train_len(cfg)

    def finish(job_cfg: Config, job_dir: str) -> Config:
        if iters is not None:
            set_train_iters(job_cfg, iters)
        if fraction_len is not None:
            set_data_fraction(job_cfg, data_fraction, fraction_len)
        if not validate:
            disable_validation(job_cfg)
        job_cfg.work_dir = job_dir
        return job_cfg

    for split in splits:
        for source in tasks:
            if mode == 'shared-bottom':
                name = f'shared__from_{source}__split{split}'
                job_dir = osp.join(work_dir, 'jobs', name)
                job_cfg = shared_bottom_config(
                    cfg, source, split, {t: ckpt[t] for t in tasks},
                    ckpt[source], probe=probe)
                deps = tuple(needs[t] for t in tasks if t in needs)
                jobs.append(
                    Job(name, 1, job_dir, finish(job_cfg, job_dir), deps,
                        dict(target=None, source=source, split=split)))
                continue
            for target in tasks:
                name = f'{target}__from_{source}__split{split}'
                job_dir = osp.join(work_dir, 'jobs', name)
                job_cfg = recombined_config(cfg, target, source, split,
                                            ckpt[target], ckpt[source],
                                            probe=probe)
                deps = tuple(needs[t] for t in dict.fromkeys(
                    (target, source)) if t in needs)
                jobs.append(
                    Job(name, 1, job_dir, finish(job_cfg, job_dir), deps,
                        dict(target=target, source=source, split=split)))
    return SweepPlan(work_dir, tasks, splits, block_names, mode, jobs)


# --------------------------------------------------------------------------
# job scripts

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


def write_jobs(plan: SweepPlan,
               launcher: str = 'pytorch',
               gpus_per_job: int = 1,
               resume: bool = False,
               dist_train: str = DIST_TRAIN,
               train_py: str = TRAIN_PY,
               cwd: Optional[str] = None) -> None:
    """Write every job's ``config.py`` and ``run.sh``.

    A finished job keeps its files; if its config would now differ (other
    options than the run that finished it, as recorded by the config digest
    in its ``job.json``), this is an error rather than a silent mix of two
    sweeps.

    Args:
        plan: The sweep.
        launcher: ``'pytorch'`` (``tools/dist_train.sh``), ``'none'``
            (``tools/train.py``, one process) or ``'slurm'`` (``srun``).
        gpus_per_job: Processes (GPUs) per job.
        resume: Rerun unfinished jobs from their last checkpoint.
        dist_train: The launcher script of ``'pytorch'``.
        train_py: The training script.
        cwd: Working directory of the jobs (default: the current one).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                         f'{launcher!r}')
    if launcher == 'none' and gpus_per_job != 1:
        raise ValueError('launcher none runs one process per job; use '
                         'pytorch for --gpus-per-job > 1')
    cwd = osp.abspath(cwd or os.getcwd())
    clashes = []
    for job in plan.jobs:
        text = job.cfg.pretty_text
        # the Runner dumps its own copy over config.py, so a finished job
        # is recognised by the digest of the config the sweep wrote
        digest = hashlib.sha256(text.encode()).hexdigest()
        if job.is_done():
            old = read_json(job.meta_path) if osp.isfile(
                job.meta_path) else {}
            if old.get('config_sha256') != digest:
                clashes.append(job.name)
            continue
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
    if clashes:
        raise ValueError(
            f'{len(clashes)} finished job(s) of {plan.work_dir} were run with '
            f'another config than these options give, e.g. {clashes[:3]}; '
            'use another --work-dir (or delete those jobs) instead of mixing '
            'two sweeps')


# --------------------------------------------------------------------------
# running jobs on this machine

def _try_lock(path: str) -> Optional[int]:
    """An fd holding an exclusive flock on ``path``, or None if busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


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
    base_env = dict(os.environ)
    if 'OMP_NUM_THREADS' not in base_env:
        base_env['OMP_NUM_THREADS'] = str(
            max(1, (os.cpu_count() or 1) // max_parallel))
    base_env.update(env or {})

    def on_signal(signum, frame):
        raise _Interrupted(signal.Signals(signum).name)

    old_handlers = {
        s: signal.signal(s, on_signal)
        for s in (signal.SIGTERM, signal.SIGHUP)
    }

    def finish(name: str, job: Job, reason: str) -> None:
        if job.is_done():
            done.add(name)
        else:
            failed[name] = reason

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
                job_env = dict(base_env, PORT=str(job_port))
                # own session: the job's whole process tree can be stopped,
                # and it outlives a killed sweep (the lock goes with it)
                proc = subprocess.Popen(
                    ['bash', job.script_path], env=job_env, pass_fds=(fd, ),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
                running[job.name] = (proc, fd, job_port, slot)
            progress.update(len(done), len(running) + len(external),
                            len(failed), len(pending))
            if pending and not running and not external and all(
                    any(n not in done for n in j.needs) for j in pending):
                raise RuntimeError('sweep stuck: pending jobs wait for jobs '
                                   'that are not in the sweep')
            if running or external or pending:
                time.sleep(poll_interval)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP
        for proc, fd, _, _ in running.values():
            _stop(proc)
            os.close(fd)
        progress.close()
        raise
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
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


# --------------------------------------------------------------------------
# collecting and the whole sweep

def collect_sweep(plan: SweepPlan) -> str:
    """Tournament affinity of the finished recombined runs (Step 3).

    Args:
        plan: A sweep whose stage 1 jobs are all done.

    Returns:
        Path of ``affinity_tournament.json``.
    """
    from branched_mtl.affinity import collect_tournament, save_affinity
    runs = [j.job_dir for j in plan.stage(1)]
    tasks, layers, affinity, meta = collect_tournament(runs,
                                                       tasks=plan.tasks)
    meta['sweep'] = dict(mode=plan.mode, splits=plan.splits,
                         work_dir=plan.work_dir, num_jobs=len(runs))
    save_affinity(plan.affinity_path, tasks, layers, 'tournament', affinity,
                  meta)
    return plan.affinity_path


def run_sweep(plan: SweepPlan,
              launcher: str = 'pytorch',
              gpus_per_job: int = 1,
              max_parallel: int = 1,
              resume: bool = False,
              port: Optional[int] = None,
              dist_train: str = DIST_TRAIN,
              env: Optional[Dict[str, str]] = None,
              out: Optional[IO] = None) -> int:
    """Write, run and collect a sweep on this machine.

    Args:
        plan: The sweep.
        launcher: ``'pytorch'`` or ``'none'`` (see :func:`write_jobs`).
        gpus_per_job: Processes per job.
        max_parallel: Concurrent jobs.
        resume: Rerun unfinished jobs from their last checkpoint.
        port: First master port (None: free ports).
        dist_train: Launcher script of ``'pytorch'``.
        env: Extra environment of the jobs.
        out: Where progress and the summary go (default: stdout).

    Returns:
        0 when every job is done and the affinity is written, else 1.
    """
    out = out or sys.stdout
    if launcher == 'slurm':
        raise ValueError('use write_slurm for a Slurm cluster')
    write_jobs(plan, launcher, gpus_per_job, resume, dist_train)
    todo = sum(not j.is_done() for j in plan.jobs)
    out.write(f'[sweep] {len(plan.jobs)} jobs ({len(plan.stage(0))} '
              f'single-task, {len(plan.stage(1))} recombined, mode '
              f'{plan.mode}), {len(plan.jobs) - todo} already done, '
              f'{max_parallel} at a time\n')
    failed = run_jobs(plan.jobs, max_parallel, port, env, out)
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


# --------------------------------------------------------------------------
# Slurm

_SBATCH = """#!/usr/bin/env bash
#SBATCH --job-name={job_name}
#SBATCH --partition={partition}
#SBATCH --array=0-{last}%{max_parallel}
#SBATCH --ntasks={gpus}
#SBATCH --ntasks-per-node={per_node}
#SBATCH --gres=gpu:{per_node}
#SBATCH --cpus-per-task={cpus}
#SBATCH --output={log_dir}/%x_%A_%a.out
# One array task per job; a finished job (done.json) exits at once, so the
# array can be submitted again after a failure.
JOBS=(
{jobs}
)
exec bash "${{JOBS[$SLURM_ARRAY_TASK_ID]}}/run.sh"
"""


def write_slurm(plan: SweepPlan,
                partition: str,
                gpus_per_job: int = 1,
                gpus_per_node: int = 8,
                cpus_per_task: int = 5,
                max_parallel: int = 16,
                resume: bool = False,
                job_name: str = 'recombination') -> str:
    """Write Slurm array scripts for the sweep and a ``submit.sh``.

    Stage 0 (if any), stage 1 and the collection run as three dependent
    submissions (``afterok``).

    Args:
        plan: The sweep.
        partition: Slurm partition.
        gpus_per_job: GPUs (tasks) per job.
        gpus_per_node: GPUs of a node.
        cpus_per_task: CPUs per task.
        max_parallel: Array tasks running at once.
        resume: Rerun unfinished jobs from their last checkpoint.
        job_name: Slurm job name prefix.

    Returns:
        Path of ``submit.sh``.
    """
    q = shlex.quote
    write_jobs(plan, 'slurm', gpus_per_job, resume)
    slurm_dir = osp.join(plan.work_dir, 'slurm')
    log_dir = osp.join(slurm_dir, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    names = []
    for stage in (0, 1):
        jobs = plan.stage(stage)
        if not jobs:
            continue
        path = osp.join(slurm_dir, f'stage{stage}.sbatch')
        write_text_atomic(
            _SBATCH.format(
                job_name=f'{job_name}-s{stage}', partition=partition,
                last=len(jobs) - 1, max_parallel=max_parallel,
                gpus=gpus_per_job, per_node=min(gpus_per_job, gpus_per_node),
                cpus=cpus_per_task, log_dir=log_dir,
                jobs='\n'.join(f'  {q(j.job_dir)}' for j in jobs)), path)
        names.append(path)
    runs = ' '.join(q(j.job_dir) for j in plan.stage(1))
    collect = osp.join(slurm_dir, 'collect.sbatch')
    write_text_atomic(
        '#!/usr/bin/env bash\n'
        f'#SBATCH --job-name={job_name}-collect\n'
        f'#SBATCH --partition={partition}\n#SBATCH --ntasks=1\n'
        f'#SBATCH --output={log_dir}/%x_%j.out\n'
        f'cd {q(os.getcwd())}\n'
        f'exec "${{PYTHON:-python}}" {q(osp.join(_REPO, "tools"))}'
        f'/compute_affinity.py --method tournament '
        f'--tasks {",".join(plan.tasks)} --out {q(plan.affinity_path)} '
        f'{runs}\n', collect)
    lines = ['#!/usr/bin/env bash', 'set -e', f'cd {q(slurm_dir)}',
             'DEP=']
    for path in names:
        lines += [f'ID=$(sbatch --parsable $DEP {q(osp.basename(path))})',
                  'echo "submitted $ID"', 'DEP=--dependency=afterok:$ID']
    lines += ['ID=$(sbatch --parsable $DEP collect.sbatch)',
              'echo "submitted $ID (collection)"']
    submit = osp.join(slurm_dir, 'submit.sh')
    write_text_atomic('\n'.join(lines) + '\n', submit)
    os.chmod(submit, 0o755)
    return submit


def describe_plan(plan: SweepPlan) -> str:
    """A listing of every job (for ``--dry-run``)."""
    lines = [
        f'{len(plan.jobs)} jobs in {plan.work_dir} (mode {plan.mode}, '
        f'{len(plan.tasks)} tasks {plan.tasks}, splits '
        + ', '.join(f'{s} ({plan.block_names[s - 1]})' for s in plan.splits)
        + ')'
    ]
    for job in plan.jobs:
        state = 'done' if job.is_done() else 'todo'
        lines.append(f'  stage {job.stage}  {state}  {job.name}  '
                     f'{job.config_path}')
    lines.append(f'{len(plan.stage(0))} single-task job(s), '
                 f'{len(plan.stage(1))} recombined job(s)')
    return '\n'.join(lines)


def load_plan_config(config: str,
                     cfg_options: Optional[dict] = None) -> Config:
    """Read the multi-task config and merge ``--cfg-options``.

    Args:
        config: Path of the multi-task config.
        cfg_options: Overrides, as from ``DictAction``.

    Returns:
        The config.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    config_tasks(cfg)
    return cfg


def read_json(path: str) -> Any:
    with open(path, encoding='utf-8') as f:
        return json.load(f)
