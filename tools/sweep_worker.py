"""An in-process worker of a recombination sweep: trains the jobs of a
queue one after another in this process (see branched_mtl.apis.sweep.worker).

tools/sweep_recombination.py starts the workers itself (``--exec
in-process``, the default); this is the command it runs, through
tools/dist_train.sh (``TRAIN_SCRIPT``) or srun::

    python tools/sweep_worker.py DIR/workers/queue.json [--stage 1]
        [--launcher none|pytorch|slurm] [--cfg-options k=v ...]
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

import branched_mtl  # noqa: F401,E402  (compat before mmseg; registers types)
from mmengine.config import DictAction  # noqa: E402

from branched_mtl.apis.sweep.worker import run_worker  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run the jobs of a sweep queue in this process')
    parser.add_argument('queue', help='the queue file (DIR/workers/'
                        'queue.json)')
    parser.add_argument('--stage', type=int, help='run only this stage '
                        '(0: single-task, 1: recombined)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to every job\'s config')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.queue):
        print(f'sweep_worker: error: queue file not found: {args.queue}',
              file=sys.stderr)
        return 2
    return run_worker(args.queue, args.launcher, args.cfg_options,
                      args.stage)


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
