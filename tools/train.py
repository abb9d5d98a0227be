"""Train a (branched) multi-task model from a config, as in mmseg/mmpretrain.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

``--resume`` alone resumes from the newest checkpoint of the work dir that
loads (a corrupt newer one is reported and set aside as ``*.corrupt``);
``--resume CKPT`` from that file. A bad input (config, checkpoint, tasks
that do not match, a work dir in use) ends in one ``train: error:`` line
and exit status 2, before any training.
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

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from mmengine.config import DictAction

from branched_mtl.apis.runner import load_config, train
from branched_mtl.utils import UserError
from branched_mtl.utils.console import quiet_known_warnings


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a multi-task model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=False, metavar='CKPT',
        help='resume from the newest checkpoint of the work dir that loads, '
        'or from CKPT')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torchrun passes --local-rank (torch >= 2.0), older launchers --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _close_process_group() -> None:
    """Let the ranks leave together and tear the group down before the
    interpreter exits: a rank exiting while gloo's threads still run can
    abort in C++ ("terminate called without an active exception"), seen
    once in CI on a loaded machine after a finished 2-process run."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.work_dir, args.cfg_options,
                          args.launcher, args.amp, args.resume)
        train(cfg)
        _close_process_group()
    except (UserError, FileNotFoundError) as e:
        # a bad input: the message names it; a traceback would bury it
        print(f'train: error: {e}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    quiet_known_warnings()
    main()
