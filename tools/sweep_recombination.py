"""Step 2 of the method: train every recombined network, then Step 3.

For target task i, source task j and split l, the recombined network takes
its bottom l blocks from j's single-task model (frozen) and the rest from
i's, and is retrained for i. This tool turns the N x N x L combinations
into jobs (one folder each under ``--work-dir``), runs them, and collects
the tournament affinity into ``WORK_DIR/affinity_tournament.json``.

Examples::

    # list the jobs
    python tools/sweep_recombination.py CONFIG --work-dir DIR --dry-run

    # train the single-task models too (stage 0), 2 jobs at a time
    python tools/sweep_recombination.py CONFIG --work-dir DIR \\
        --max-parallel 2 --iters 200 --data-fraction 0.25 --splits 1,3,5

    # reuse finished single-task runs (DIR/<task>/last_checkpoint)
    python tools/sweep_recombination.py CONFIG --work-dir DIR \\
        --single-task-dir work_dirs/single_task

    # one process per job instead of in-process workers
    python tools/sweep_recombination.py CONFIG --work-dir DIR --exec per-job

    # stop recombined runs once their probe loss stalls (3 checks, every 10)
    python tools/sweep_recombination.py CONFIG --work-dir DIR --early-stop 3

    # the cheaper sweep: all targets of one (source, split) in one job
    python tools/sweep_recombination.py CONFIG --work-dir DIR \\
        --mode shared-bottom

    # a Slurm cluster: write array scripts, then run DIR/slurm/submit.sh
    python tools/sweep_recombination.py CONFIG --work-dir DIR \\
        --launcher slurm --partition gpu --gpus-per-job 1

Running the same command again skips finished jobs and reruns the others
(``--resume``: from their last checkpoint), so a killed sweep completes
later with nothing lost and nothing done twice. One sweep at a time per
work dir: a second one stops at once and names the process that holds it
(``--dry-run`` only reads, and runs beside it). ``--cfg-options`` apply to
every job; ``--iters`` and ``--data-fraction`` to the recombined runs only.
"""
import argparse
import math
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from mmengine.config import DictAction

from branched_mtl.apis.sweep import (DIST_TRAIN, EXEC_MODES, LAUNCHERS,
                                     MODES,
                                     describe_plan, load_plan_config,
                                     plan_sweep, run_sweep, write_slurm)
from branched_mtl.utils.console import quiet_known_warnings
from branched_mtl.utils.lock import WorkDirLock
from branched_mtl.utils.paths import check_work_dir


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train the recombined networks of Step 2 and collect '
        'the tournament affinity (Step 3).')
    parser.add_argument('config', help='the multi-task config')
    parser.add_argument('--work-dir', required=True,
                        help='sweep directory (one folder per job)')
    parser.add_argument('--tasks', help='comma-separated subset of the '
                        'config\'s tasks (default: all)')
    parser.add_argument('--splits', help='split locations: numbers of frozen '
                        'bottom blocks (1..L) or block names, comma-'
                        'separated (default: all L)')
    parser.add_argument('--mode', choices=MODES, default='per-pair',
                        help='per-pair: one job per (target, source, split), '
                        'as in the paper; shared-bottom: one job per '
                        '(source, split) training all targets on one frozen '
                        'bottom')
    parser.add_argument('--single-task-dir',
                        help='finished single-task runs, one folder per task '
                        '(DIR/<task>/ with last_checkpoint); default: train '
                        'them as stage 0 jobs under WORK_DIR/single_task')
    parser.add_argument('--iters', type=int,
                        help='training iterations of each recombined run '
                        '(the schedule is scaled to fit)')
    parser.add_argument('--data-fraction', type=float,
                        help='fraction of the training set the recombined '
                        'runs use (a fixed random subset)')
    parser.add_argument('--probe-samples', type=int, default=64,
                        help='K held-out samples of the affinity probe')
    parser.add_argument('--probe-seed', type=int, default=0)
    parser.add_argument('--validate', action='store_true',
                        help='keep the validation loop in recombined runs')
    parser.add_argument('--early-stop', type=int, metavar='PATIENCE',
                        help='stop a recombined run when its probe loss has '
                        'not improved for PATIENCE checks (default: run the '
                        'whole schedule)')
    parser.add_argument('--early-stop-interval', type=int, default=10,
                        help='iterations between the early-stopping checks')
    parser.add_argument('--early-stop-min-delta', type=float, default=0.0,
                        help='relative improvement that counts (0.01: 1%%)')
    parser.add_argument('--exec', dest='exec_mode', choices=EXEC_MODES,
                        default='in-process',
                        help='in-process: each of the --max-parallel '
                        'workers starts once and trains job after job; '
                        'per-job: one process (run.sh) per job')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='pytorch',
                        help='pytorch: tools/dist_train.sh on this machine; '
                        'none: tools/train.py (one process); slurm: write '
                        'array scripts (WORK_DIR/slurm/submit.sh)')
    parser.add_argument('--gpus-per-job', type=int, default=1,
                        help='processes (GPUs) per job')
    parser.add_argument('--max-parallel', type=int, default=1,
                        help='jobs running at once')
    parser.add_argument('--port', type=int,
                        help='first master port; concurrent jobs use port, '
                        'port+1, ... (default: free ports)')
    parser.add_argument('--resume', action='store_true',
                        help='rerun unfinished jobs from their last '
                        'checkpoint instead of from scratch')
    parser.add_argument('--dry-run', action='store_true',
                        help='list the jobs and exit')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument('--gpus-per-node', type=int, default=8,
                        help='Slurm: GPUs of a node; 0 for CPU nodes (no '
                        'GPU request)')
    parser.add_argument('--cpus-per-task', type=int, default=5,
                        help='Slurm: CPUs per task')
    parser.add_argument('--dist-train', default=DIST_TRAIN,
                        help='launcher script of --launcher pytorch '
                        '(default: tools/dist_train.sh)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the multi-task config (every job)')
    args = parser.parse_args(argv)
    if args.launcher == 'slurm' and not args.partition and not args.dry_run:
        parser.error('--launcher slurm needs --partition')
    if args.max_parallel < 1 or args.gpus_per_job < 1:
        parser.error('--max-parallel and --gpus-per-job must be >= 1')
    # every number checked here, before a job trains (a bad one made every
    # job fail, or was silently bent)
    for name, value, low in (('--iters', args.iters, 1),
                             ('--probe-samples', args.probe_samples, 1),
                             ('--probe-seed', args.probe_seed, 0),
                             ('--early-stop', args.early_stop, 1),
                             ('--early-stop-interval',
                              args.early_stop_interval, 1),
                             ('--gpus-per-node', args.gpus_per_node, 0),
                             ('--cpus-per-task', args.cpus_per_task, 1)):
        if value is not None and value < low:
            parser.error(f'{name} must be a whole number >= {low}, got '
                         f'{value}')
    if args.port is not None and not (
            1 <= args.port and args.port + args.max_parallel - 1 <= 65535):
        parser.error(f'--port must be in 1..65535 (with --max-parallel '
                     f'{args.max_parallel}, up to port + '
                     f'{args.max_parallel - 1}), got {args.port}')
    fraction = args.data_fraction
    if fraction is not None and not (math.isfinite(fraction)
                                     and 0 < fraction <= 1):
        parser.error(f'--data-fraction must be in (0, 1], got {fraction}')
    delta = args.early_stop_min_delta
    if not (math.isfinite(delta) and delta >= 0):
        parser.error(f'--early-stop-min-delta must be a finite number >= 0, '
                     f'got {delta}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        check_work_dir(args.work_dir, create=False)
        cfg = load_plan_config(args.config, args.cfg_options)
        plan = plan_sweep(
            cfg, args.work_dir, tasks=args.tasks, splits=args.splits,
            mode=args.mode, single_task_dir=args.single_task_dir,
            iters=args.iters, data_fraction=args.data_fraction,
            probe_samples=args.probe_samples, probe_seed=args.probe_seed,
            validate=args.validate,
            early_stop=None if args.early_stop is None else dict(
                patience=args.early_stop, interval=args.early_stop_interval,
                min_delta=args.early_stop_min_delta), config=args.config)
        if args.dry_run:
            print(describe_plan(plan))
            return 0
        # one sweep per work dir; the lock is not inherited by the jobs, so
        # orphans of a killed sweep do not block the next one (each job has
        # its own lock, which the next sweep waits on)
        with WorkDirLock(args.work_dir):
            if args.launcher == 'slurm':
                submit = write_slurm(
                    plan, args.partition, args.gpus_per_job,
                    args.gpus_per_node, args.cpus_per_task,
                    args.max_parallel, args.resume, exec_mode=args.exec_mode)
                print(f'wrote Slurm scripts; submit with: bash {submit}')
                return 0
            return run_sweep(plan, args.launcher, args.gpus_per_job,
                             args.max_parallel, args.resume, args.port,
                             args.dist_train, exec_mode=args.exec_mode)
    except (FileNotFoundError, ValueError) as e:
        print(f'sweep_recombination: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('\nsweep_recombination: interrupted; run the same command '
              'again to continue', file=sys.stderr)
        return 130


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
