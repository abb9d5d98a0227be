"""Step 1 of the method: one single-task config per task of a multi-task
config (same encoder, that task's head, data and metrics, same schedule).

    python tools/make_single_task_configs.py CONFIG --out-dir DIR \\
        [--tasks a,b] [--probe-samples 64] [--cfg-options k=v ...]

writes ``DIR/<config name>_<task>.py`` for every task; train each with
``tools/train.py`` or ``tools/dist_train.sh`` under identical conditions.
Each carries an ``AffinityHook`` (``--probe-samples 0``: none), so its run
can feed RSA affinity and stand in for the recombined runs' diagonal.
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from mmengine.config import DictAction

from branched_mtl.apis.configs import (add_affinity_hook, resolve_tasks_arg,
                                       single_task_config)
from branched_mtl.apis.sweep import load_plan_config
from branched_mtl.utils.console import quiet_known_warnings


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write one single-task config per task of a multi-task '
        'config.')
    parser.add_argument('config', help='the multi-task config')
    parser.add_argument('--out-dir', required=True,
                        help='folder of the single-task configs')
    parser.add_argument('--tasks', help='comma-separated subset of tasks')
    parser.add_argument('--probe-samples', type=int, default=64,
                        help='K held-out samples of the AffinityHook '
                        '(0: no hook)')
    parser.add_argument('--probe-seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the multi-task config first')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[str]:
    args = parse_args(argv)
    try:
        cfg = load_plan_config(args.config, args.cfg_options)
        tasks = resolve_tasks_arg(args.tasks, cfg)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'make_single_task_configs: error: {e}')
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.config))[0]
    paths = []
    for task in tasks:
        st_cfg = single_task_config(cfg, task)
        if args.probe_samples > 0:
            add_affinity_hook(st_cfg, dataset='val',
                              num_samples=args.probe_samples,
                              seed=args.probe_seed)
        path = osp.join(args.out_dir, f'{stem}_{task}.py')
        st_cfg.dump(path)
        paths.append(path)
        print(f'{task}: {path}')
    return paths


if __name__ == '__main__':
    quiet_known_warnings()
    main()
