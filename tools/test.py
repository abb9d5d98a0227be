"""Evaluate a checkpoint on the config's test set.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.json]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401
from mmengine.config import DictAction
from mmengine.dist import get_rank

from branched_mtl.apis.runner import evaluate, load_config
from branched_mtl.utils import UserError, check_output_file, dump_json_atomic
from branched_mtl.utils.console import quiet_known_warnings


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        if args.out:
            check_output_file(args.out)
        cfg = load_config(args.config, args.work_dir, args.cfg_options,
                          args.launcher)
        metrics = evaluate(cfg, args.checkpoint)
    except (UserError, FileNotFoundError) as e:
        # a bad input (checkpoint, config, --out, tasks that do not match)
        print(f'test: error: {e}', file=sys.stderr)
        sys.exit(2)
    if args.out and get_rank() == 0:
        dump_json_atomic(metrics, args.out)


if __name__ == '__main__':
    quiet_known_warnings()
    main()
