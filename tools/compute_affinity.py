"""Step 3: collect the runs' affinity probes into one affinity file.

Examples::

    # RSA of the single-task runs' features, at every split
    python tools/compute_affinity.py --method rsa \\
        work_dirs/st_semseg work_dirs/st_depth --out affinity.json

    # tournament over every recombined run found below a sweep dir
    python tools/compute_affinity.py --method tournament \\
        --sweep-dir work_dirs/recombined --out affinity.json

Task order: ``--tasks a,b,c``; by default the runs are sorted by path and
tasks are listed in order of first appearance in their ``meta.json``.
"""
import argparse
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import numpy as np

from branched_mtl.affinity import (collect_rsa, collect_tournament,
                                   find_probe_runs, read_probe,
                                   save_affinity)
from branched_mtl.utils.paths import check_output_file
from branched_mtl.utils.console import quiet_known_warnings


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Collect affinity_probe/ folders of training runs into '
        'an affinity JSON file (L x N x N).')
    parser.add_argument('run_dirs', nargs='*', metavar='RUN_DIR',
                        help='training work dirs containing affinity_probe/')
    parser.add_argument('--method', required=True,
                        choices=['tournament', 'rsa'],
                        help='tournament: recombined runs\' losses (paper); '
                        'rsa: single-task runs\' features')
    parser.add_argument('--sweep-dir',
                        help='also use every run below this dir that has an '
                        'affinity_probe/meta.json (for rsa, only the '
                        'single-task runs among them)')
    parser.add_argument('--out', required=True, help='output JSON path')
    parser.add_argument('--tasks',
                        help='comma-separated task order, e.g. '
                        'semseg,depth,normals (default: order of first '
                        'appearance in the runs sorted by path)')
    args = parser.parse_args(argv)
    if not args.run_dirs and not args.sweep_dir:
        parser.error('give RUN_DIR arguments and/or --sweep-dir')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    tasks = None
    if args.tasks:
        tasks = [t.strip() for t in args.tasks.split(',') if t.strip()]
    try:
        check_output_file(args.out)
        run_dirs = list(args.run_dirs)
        if args.sweep_dir:
            found = find_probe_runs(args.sweep_dir)
            if args.method == 'rsa':
                # A sweep dir usually mixes Step 1 and Step 2 runs; RSA
                # only needs the single-task ones.
                found = [
                    d for d in found if read_probe(d).recombination is None
                ]
            run_dirs += found
        collect = collect_rsa if args.method == 'rsa' else collect_tournament
        tasks, layers, affinity, meta = collect(run_dirs, tasks=tasks)
        save_affinity(args.out, tasks, layers, args.method, affinity, meta)
    except ValueError as e:
        sys.exit(f'compute_affinity: error: {e}')

    print(f'{args.method} affinity of {len(tasks)} tasks at {len(layers)} '
          f'split(s), K={meta["num_samples"]} samples, from {len(run_dirs)} '
          f'run(s) -> {args.out}')
    with np.printoptions(precision=3, suppress=True):
        for layer, mat in zip(layers, affinity):
            print(f'[{layer}] tasks: {", ".join(tasks)}\n{mat}')


if __name__ == '__main__':
    quiet_known_warnings()
    main()
