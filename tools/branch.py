"""The whole method in one command: single-task models, task affinity, the
tree, the branched network and its baselines, and a report.

    python tools/branch.py CONFIG --work-dir DIR [--affinity rsa|tournament]
        (--alpha A | --budget B) [--method auto|exact|beam] [--top-n 3]
        [--launcher none|pytorch|slurm] [--gpus N] [--partition P]
        [--random-trees R]

Rerunning the same command resumes: finished stages are skipped, a stage
whose inputs changed runs again.
"""
import argparse
import sys

import branched_mtl  # noqa: F401

from branched_mtl.pipeline import BranchJob


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Decide what layers to share and train the result')
    parser.add_argument('config', help='multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--affinity', default='rsa',
                        choices=['rsa', 'tournament'])
    parser.add_argument('--alpha', type=float, help='complexity weight')
    parser.add_argument('--budget',
                        help='parameter budget: 25M, 300K, 60%% (of the '
                        'single-task models together) or a number')
    parser.add_argument('--method', default='auto',
                        choices=['auto', 'exact', 'beam'])
    parser.add_argument('--top-n', type=int, default=3)
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per training run (pytorch/slurm)')
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument('--random-trees', type=int,
                        help='random trees of the chosen size (default: '
                        'config branch.random_trees, else 3)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.alpha is None and args.budget is None:
        parser.error('give --alpha or --budget')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        job = BranchJob(args.config, args.work_dir, affinity=args.affinity,
                        alpha=args.alpha, budget=args.budget,
                        method=args.method, top_n=args.top_n,
                        launcher=args.launcher, gpus=args.gpus,
                        partition=args.partition,
                        random_trees=args.random_trees, seed=args.seed)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f'branch: error: {e}', file=sys.stderr)
        return 2
    job.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
