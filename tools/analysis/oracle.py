"""The oracle at small scale: every distinct tree within a budget, trained
over the seeds, and each method's tree ranked among them.

    python tools/analysis/oracle.py CONFIG --work-dir DIR --budget 45% \
        [--seeds 5] [--seed 0] [--methods all_shared,rsa,tag] \
        [--random-trees 0] [--max-candidates 64] [--cfg-options k=v ...]

First the comparison of ``compare_methods.py`` (the references and the
methods, ``DIR/comparison.*``), then every tree of
``branched_mtl.tree.enumerate_trees`` within the budget on every seed,
with the same schedule and checkpoint rule. ``DIR/oracle.md`` (+ ``.json``):
each method's rank among the trees and its regret (the best tree's Δm
minus that of the method's tree, paired by seed, with a 95 % bootstrap
interval), then every tree by mean Δm. Meant for few tasks: four tasks
over five blocks have 561 trees without a budget. Rerunning resumes.
"""
import argparse
import os.path as osp
import sys
import warnings

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: E402,F401
from branched_mtl.utils.package import use_checkout  # noqa: E402

use_checkout(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmengine.config import DictAction  # noqa: E402

from branched_mtl.pipeline.methods import parse_methods  # noqa: E402
from branched_mtl.pipeline.oracle import Oracle  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from branched_mtl.utils.errors import UserError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train every tree within a budget and rank the '
        'methods\' trees among them')
    parser.add_argument('config', help='multi-task config (few tasks)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--budget', required=True,
                        help='parameter budget (45%% of the single-task '
                        'models together, or 300K)')
    parser.add_argument('--seeds', type=int, default=5,
                        help='number of seeds (S0 .. S0+S-1)')
    parser.add_argument('--seed', type=int, default=0, help='first seed')
    parser.add_argument('--methods', default='all_shared,rsa,tag',
                        help='comma-separated methods to rank')
    parser.add_argument('--random-trees', type=int, default=0,
                        help='random relabellings per method tree (the '
                        'candidates already hold every tree of the budget)')
    parser.add_argument('--max-candidates', type=int, default=64,
                        help='refuse a budget with more trees than this')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.random_trees < 0:
        parser.error(f'--random-trees must be >= 0, got {args.random_trees}')
    if args.max_candidates < 1:
        parser.error(f'--max-candidates must be >= 1, got '
                     f'{args.max_candidates}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not osp.isfile(args.config):
            raise UserError(f'config file not found: {args.config}')
        methods = parse_methods(args.methods)
        Oracle(args.config, args.work_dir,
               seeds=list(range(args.seed, args.seed + args.seeds)),
               budget=args.budget, methods=methods,
               random_trees=args.random_trees,
               max_candidates=args.max_candidates,
               cfg_options=args.cfg_options).run()
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f'oracle: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
