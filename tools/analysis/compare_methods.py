"""Every way of deciding what layers to share, on one config, over seeds.

    python tools/analysis/compare_methods.py CONFIG --work-dir DIR \
        (--budget 60%|25M|3.5GFLOPs | --budgets 20%,40%,60%,80% | --alpha A) \
        [--seeds S] [--seed S0] \
        [--methods single_task,all_shared,rsa,tournament,tag,ltb,adashare] \
        [--random-trees R] [--cfg-options k=v ...]

``--methods`` takes the references (``single_task``, ``all_shared``) and
any method registered in ``branched_mtl.registry.METHODS``: the package's
(``rsa``, ``tournament``, ``tag``, ``tag_groups``) and those the config's
``custom_imports`` register (``projects.learning_to_branch.ltb`` gives
``ltb``, ``projects.adashare.adashare`` gives ``adashare``); default: all
of them. Per seed: the single-task models and the all-shared network; the
trees of the RSA, tournament and TAG affinities (``tools/branch.py``'s
job); every other method's tree (or derived network) retrained; R random
trees of the size of each tree. Every model trains
from scratch with the config's schedule, keeps its best probe checkpoint
and is tested once. ``DIR/comparison.md`` (+ ``.png``, ``.json``): per
method Δm and every task's metric (mean ± std over seeds), parameters,
FLOPs, measured CPU throughput and the search's wall and CPU seconds;
paired statistics per method (95 % bootstrap intervals of Δm, of the
difference to the median random tree and to all-shared, win rate against
the random trees). With ``--budgets``: every method at every budget (the
single-task and all-shared models and each affinity once per seed), a
paired table per budget and the Pareto figure (Δm against parameters and
FLOPs, the random trees as a band).

A method's own search settings are the config's ``<settings_key> =
dict(...)``, e.g. ``ltb = dict(...)`` (or ``--cfg-options ltb.iters=300
...``); they do not touch the config the models train with. Rerunning the same command
resumes: a finished method is not rerun; a failed one is recorded with its
reason, the others go on, and the next run tries it again.
"""
import argparse
import os.path as osp
import sys
import warnings

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: E402,F401
from branched_mtl.utils.package import use_checkout  # noqa: E402

# the checkout, where the projects a config imports (custom_imports) live:
# importable here and in the sweeps and training runs started from here
use_checkout(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmengine.config import Config, DictAction  # noqa: E402

from branched_mtl.pipeline.compare import Comparison  # noqa: E402
from branched_mtl.pipeline.methods import parse_methods  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from branched_mtl.utils.errors import UserError  # noqa: E402

# random trees per tree unless --random-trees says otherwise
RANDOM_TREES = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Compare the ways of deciding what layers to share')
    parser.add_argument('config', help='multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--budget',
                        help='size of the trees: parameters (25M, 60%% of '
                        'the single-task models together) or FLOPs per '
                        'image (3.5GFLOPs); the size target of the methods '
                        'that search with one')
    parser.add_argument('--budgets',
                        help='a budget sweep: comma-separated budgets '
                        '(20%%,40%%,60%%,80%%; parameters or FLOPs), every '
                        'method at every budget, the references once')
    parser.add_argument('--alpha', type=float,
                        help='complexity weight of the affinity trees, '
                        'instead of a budget')
    parser.add_argument('--seeds', type=int, default=1,
                        help='number of seeds (S0 .. S0+S-1)')
    parser.add_argument('--seed', type=int, default=0, help='first seed')
    parser.add_argument('--methods',
                        help='comma-separated references and registered '
                        'methods (default: all); the single-task models '
                        'always train (the reference)')
    parser.add_argument('--random-trees', type=int, default=None,
                        help='random trees per tree: distinct relabellings '
                        'of it (same shape and size; fewer where fewer '
                        'exist), the same for every method of a seed whose '
                        f'tree has that shape (default: {RANDOM_TREES}; '
                        'the config\'s branch.random_trees is the main '
                        'job\'s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    args = parser.parse_args(argv)
    if args.budget is None and args.alpha is None and not args.budgets:
        parser.error('give --budget, --budgets (or --alpha)')
    if args.budgets is not None:
        args.budgets = [b.strip() for b in args.budgets.split(',')
                        if b.strip()]
        if not args.budgets:
            parser.error('--budgets names no budget')
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.random_trees is not None and args.random_trees < 0:
        parser.error(f'--random-trees must be >= 0, got {args.random_trees}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not osp.isfile(args.config):
            raise UserError(f'config file not found: {args.config}')
        if args.random_trees is None:
            args.random_trees = RANDOM_TREES
            # a config written for tools/branch.py names its own count:
            # say which one this run uses
            cfg = Config.fromfile(args.config)
            cfg.merge_from_dict(args.cfg_options or {})
            own = (cfg.get('branch') or {}).get('random_trees')
            if own is not None and own != RANDOM_TREES:
                print(f'[compare] {RANDOM_TREES} random trees per tree (the '
                      f'default); the config\'s branch.random_trees={own} '
                      f'is the main job\'s: give --random-trees {own} for '
                      'that many')
        methods = (None if args.methods is None
                   else parse_methods(args.methods))
        Comparison(
            args.config, args.work_dir,
            seeds=list(range(args.seed, args.seed + args.seeds)),
            budget=args.budget, alpha=args.alpha, budgets=args.budgets,
            methods=methods,
            random_trees=args.random_trees,
            cfg_options=args.cfg_options).run()
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f'compare_methods: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
