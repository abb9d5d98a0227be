"""The whole method in one command: single-task models, task affinity, the
tree, the branched network and its baselines, and a report.

    python tools/branch.py CONFIG --work-dir DIR [--affinity rsa|tournament|tag]
        (--alpha A | --budget B) [--method auto|exact|beam] [--top-n 3]
        [--launcher none|pytorch|slurm] [--gpus N] [--partition P]
        [--random-trees R] [--seed S0] [--seeds S] [--max-parallel N]

``--affinity`` takes any method registered in
``branched_mtl.registry.METHODS``: the package's affinities (``rsa``, the
paper's ``tournament``, ``tag``) and any method the config's
``custom_imports`` register (``ltb`` with
``custom_imports=dict(imports=['projects.learning_to_branch.ltb'])``); a
method that is not an affinity decides the tree itself.

With ``--seeds S`` (or ``branch.seeds`` in the config) the whole job runs
once per seed S0, S0+1, ... in ``DIR/seed_<s>/`` and ``DIR/report.md`` gives
mean +/- std over the seeds, each seed's tree and the affinity's
repeatability.

``--max-parallel N`` (or ``branch.max_parallel``) trains N models at once
on this machine, each in its own process with its share of the cores: the
single-task models side by side, then the branched, all-shared and random
ones. On a few CPU cores this is faster than one process using them all.

Rerunning the same command resumes: finished stages are skipped, a stage
whose inputs changed runs again. One job at a time per work dir: a second
one stops at once and names the process that holds it.

Every input that is known before training is checked before training; a
bad one ends in one ``branch: error:`` line (exit status 2) that names the
option, file or task at fault and says what to do.
"""
import argparse
import math
import os.path as osp
import sys
import warnings

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: E402,F401
from branched_mtl.utils.package import use_checkout  # noqa: E402

# the checkout, where the projects a config imports (custom_imports) live:
# importable here and in the sweeps and training runs started from here
use_checkout(osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

from branched_mtl.pipeline import BranchJob, run_seeds  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from branched_mtl.utils.errors import UserError  # noqa: E402
from branched_mtl.utils.lock import WorkDirLock  # noqa: E402


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f'must be a finite number >= 0, got {text[:40]!r}')
    return value


def _whole(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(
                f'must be a whole number >= {low}, got {text[:40]!r}')
        return value
    return parse


def _seed(text: str) -> int:
    value = _whole(0)(text)
    if value > 2**32 - 1:
        raise argparse.ArgumentTypeError(
            f'must be a whole number <= {2**32 - 1} (numpy\'s seeds), got '
            f'{text[:40]!r}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Decide what layers to share and train the result')
    parser.add_argument('config', help='multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--affinity', default='rsa',
                        help='the method: rsa, tournament, tag, or any '
                        'method the config\'s custom_imports register '
                        '(default: rsa)')
    parser.add_argument('--alpha', type=_alpha, help='complexity weight')
    parser.add_argument('--budget',
                        help='parameter budget: 25M, 300K, 60%% (of the '
                        'single-task models together) or a number; or FLOPs '
                        'per image: 3.5GFLOPs')
    parser.add_argument('--method', default='auto',
                        choices=['auto', 'exact', 'beam'])
    parser.add_argument('--top-n', type=_whole(1), default=3)
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--gpus', type=_whole(1), default=1,
                        help='processes per training run (pytorch/slurm)')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument('--max-parallel', type=_whole(1),
                        help='models trained at once on this machine '
                        '(--launcher none), each in its own process with '
                        'its share of the cores (default: config '
                        'branch.max_parallel, else 1)')
    parser.add_argument('--random-trees', type=_whole(0),
                        help='random trees of the chosen size (default: '
                        'config branch.random_trees, else 3)')
    parser.add_argument('--seed', type=_seed, default=0,
                        help='seed of the training runs and random trees '
                        '(the first seed with --seeds)')
    parser.add_argument('--seeds', type=int,
                        help='repeat the job over this many seeds (default: '
                        'config branch.seeds, else 1)')
    args = parser.parse_args(argv)
    if args.alpha is None and args.budget is None:
        parser.error('give --alpha or --budget')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def make_job(seed: int, work_dir: str) -> BranchJob:
        return BranchJob(args.config, work_dir, affinity=args.affinity,
                         alpha=args.alpha, budget=args.budget,
                         method=args.method, top_n=args.top_n,
                         launcher=args.launcher, gpus=args.gpus,
                         partition=args.partition,
                         random_trees=args.random_trees, seed=seed,
                         max_parallel=args.max_parallel)

    try:
        num_seeds = args.seeds
        if num_seeds is None:
            num_seeds = Config.fromfile(args.config).get('branch', {}).get(
                'seeds', 1)
        if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) \
                or num_seeds < 1:
            raise ValueError(f'--seeds must be an int >= 1, got {num_seeds!r}')
        seeds = list(range(args.seed, args.seed + num_seeds))
        # every seed's inputs checked before anything trains
        jobs = {s: make_job(s, args.work_dir if num_seeds == 1 else
                            f'{args.work_dir}/seed_{s}') for s in seeds}
    except (ValueError, KeyError, FileNotFoundError, SyntaxError) as e:
        print(f'branch: error: {e}', file=sys.stderr)
        return 2
    try:
        if num_seeds == 1:
            jobs[seeds[0]].run()  # locks the work dir itself
        else:
            # the seeds' own folders are locked by their jobs
            with WorkDirLock(args.work_dir):
                run_seeds(lambda s, _: jobs[s], args.work_dir, seeds)
    except UserError as e:
        # a bad input found once it was known (a stage's result, a busy
        # work dir, a failed training run that printed its own error)
        print(f'branch: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
