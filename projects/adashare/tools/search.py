"""AdaShare policy search: learn a select/skip policy per task and residual
block, derive it by argmax and write a config that retrains it.

    python projects/adashare/tools/search.py CONFIG --work-dir DIR \
        [--seed S] [--sparsity-weight W] [--params-target 0.5M] \
        [--flops-target 30M] [--cfg-options k=v ...]

CONFIG is a multi-task config with a PolicyEncoder (the project's configs)
or a BranchedEncoder (any of branched_mtl's configs, converted). Writes
``DIR/adashare.py`` (inherits CONFIG, sets the policy) and
``DIR/search.json`` (policy, logits, sizes, search cost, per-round
history). A bad input ends in one ``search: error:`` line, exit status 2.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

# the project is imported as projects.adashare.adashare: from the checkout
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import branched_mtl  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402

from branched_mtl.utils import UserError, WorkDirLock  # noqa: E402
from branched_mtl.utils.paths import check_work_dir  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from projects.adashare.adashare import AdaShareSearch  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='AdaShare policy search')
    parser.add_argument('config', help='multi-task config')
    parser.add_argument('--work-dir', required=True,
                        help='writes adashare.py and search.json here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--sparsity-weight', type=float,
                        help='regularisation weight of the sparsity loss '
                        '(the size knob; default: the config\'s)')
    parser.add_argument('--params-target',
                        help='largest parameter count allowed, e.g. 0.5M')
    parser.add_argument('--flops-target',
                        help='largest FLOPs per image allowed, e.g. 30M')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if not osp.isfile(args.config):
            raise FileNotFoundError(f'config file not found: {args.config}')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        adashare = dict(cfg.get('adashare') or {})
        for key in ('sparsity_weight', 'params_target', 'flops_target'):
            value = getattr(args, key)
            if value is not None:
                adashare[key] = value
        cfg.adashare = adashare
        check_work_dir(args.work_dir, '--work-dir', create=False)
        search = AdaShareSearch(cfg, args.work_dir, args.config,
                                seed=args.seed)
        # one run per work dir, as every other tool
        with WorkDirLock(args.work_dir):
            search.run()
    except (UserError, FileNotFoundError) as e:
        print(f'search: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
