"""Build a branched multi-task network from an affinity file (step 4).

    python tools/build_tree.py AFFINITY.json BASE_CONFIG.py \
        (--alpha A | --budget 25M) [--method auto|exact|beam] [--top-n 3] \
        --out NEW_CONFIG.py
    python tools/build_tree.py AFFINITY.json BASE_CONFIG.py --alpha-sweep

Chooses how the encoder's blocks are shared (the tree of least cost
C = sum_l C_clustering^l + alpha * C_complexity^l, optionally within a
parameter budget) and writes NEW_CONFIG.py, which inherits BASE_CONFIG.py and
sets only ``model.encoder.branches``, so ``tools/train.py NEW_CONFIG.py``
trains the chosen network. A drawing of the tree goes to NEW_CONFIG.png.
``--alpha-sweep`` prints the distinct trees over a range of alpha: the
trade-off between parameters and clustering cost to choose alpha from.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from branched_mtl.affinity import load_affinity
from branched_mtl.tree import (all_shared, alpha_sweep, count_tree_params,
                               format_tree, fully_separate, reorder_affinity,
                               search_tree, tree_cost_breakdown)
from branched_mtl.tree.config_writer import (check_task_names,
                                             write_tree_config)
from branched_mtl.tree.budget import parse_budget as tree_parse_budget
from branched_mtl.tree.draw import draw_tree
# submodules, not the package namespace: tools/branch.py loads this file
# into a process that may have imported branched_mtl.utils earlier
from branched_mtl.utils.console import quiet_known_warnings
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.paths import check_output_file


def parse_budget(text: str) -> int:
    """'25M' -> 25_000_000, '300K' -> 300_000, '1.5M', plain ints."""
    try:
        budget = tree_parse_budget(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f'{text[:40]!r} is too large to be a parameter count') from None
    if budget < 1:
        # '0.5' would otherwise become a budget of 0 parameters
        raise argparse.ArgumentTypeError(
            f'{text[:40]!r} is {budget} parameters, no network fits; give a '
            'parameter count like 25M, 300K or 1200000')
    return budget


def _alpha(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float('nan')
    if not v >= 0 or v == float('inf'):
        raise argparse.ArgumentTypeError(
            f'alpha must be a finite number >= 0, got {text!r}')
    return v


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Choose the tree of a branched multi-task network from '
        'task affinities and write it as a config')
    parser.add_argument('affinity', help='affinity JSON (step 3)')
    parser.add_argument('config', help='base config to inherit')
    parser.add_argument('--alpha', type=_alpha,
                        help='weight of the complexity cost (default 0 with '
                        '--budget)')
    parser.add_argument('--budget', type=parse_budget,
                        help='parameter budget of the whole model, e.g. 25M')
    parser.add_argument('--method', choices=['auto', 'exact', 'beam'],
                        default='auto',
                        help='exact for few tasks, else the paper\'s beam')
    parser.add_argument('--top-n', type=int, default=3,
                        help='partial trees the beam search keeps per block')
    parser.add_argument('--out', help='the new config (.py)')
    parser.add_argument('--alpha-sweep', action='store_true',
                        help='print the distinct trees over a range of alpha')
    parser.add_argument('--no-draw', action='store_true',
                        help='do not save NEW_CONFIG.png')
    args = parser.parse_args(argv)
    building = args.alpha is not None or args.budget is not None
    if not building and not args.alpha_sweep:
        parser.error('give --alpha and/or --budget (or --alpha-sweep)')
    if building and not args.out:
        parser.error('--out NEW_CONFIG.py is required to build a tree')
    if args.out and not args.out.endswith('.py'):
        parser.error(f'--out must be a .py config, got {args.out}')
    if args.top_n < 1:
        parser.error(f'--top-n must be >= 1, got {args.top_n}')
    return args


def load_problem(affinity_path: str, config_path: str) -> dict:
    """The affinity (in the model's task order) and the model's blocks.

    Raises:
        ValueError: if the affinity's tasks or layers do not match the model.
    """
    from mmengine.config import Config

    from branched_mtl.models import describe_model
    doc = load_affinity(affinity_path)
    check_task_names(doc['tasks'])
    cfg = Config.fromfile(config_path)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    info = describe_model(model_cfg)
    tasks = check_task_names(info['tasks'])
    try:
        aff = reorder_affinity(doc['affinity'], doc['tasks'], tasks)
    except ValueError as e:
        raise ValueError(f'{affinity_path} does not fit {config_path}: {e}')
    layers, blocks = list(doc['layers']), list(info['block_names'])
    if len(layers) != len(blocks):
        raise ValueError(
            f'{affinity_path} has {len(layers)} layers {layers} but the '
            f'model of {config_path} has {len(blocks)} sharable blocks '
            f'{blocks}: measure the affinity at every block')
    note = None
    if layers != blocks:
        note = (f'note: the affinity\'s layers {layers} are named unlike the '
                f'model\'s blocks {blocks}; matched by position')
    return dict(affinity=aff, tasks=tasks, note=note, **{
        k: info[k] for k in ('block_names', 'block_params', 'pools',
                             'head_params')})


def _one_line(branches) -> str:
    return ' / '.join(' '.join('[' + ' '.join(g) + ']' for g in p)
                      for p in branches)


def print_sweep(prob: dict, method: str, top_n: int) -> List[dict]:
    rows = alpha_sweep(prob['affinity'], prob['tasks'], prob['pools'],
                       block_params=prob['block_params'],
                       head_params=prob['head_params'], method=method,
                       top_n=top_n)
    print('Trees over alpha (the trade-off to choose alpha from):')
    print(f'{"alpha from":>11} {"to":>10} {"params":>12} {"clustering":>10} '
          f'{"groups":>14}  tree (blocks shallow to deep)')
    for r in rows:
        groups = '-'.join(str(len(p)) for p in r['branches'])
        print(f'{r["alpha_min"]:>11.4g} {r["alpha_max"]:>10.4g} '
              f'{r["params"]:>12,} {r["clustering"]:>10.4f} {groups:>14}  '
              f'{_one_line(r["branches"])}')
    return rows


def build(args: argparse.Namespace, prob: dict) -> dict:
    """Search, report, and write the config (and drawing)."""
    tasks, names = prob['tasks'], prob['block_names']
    alpha = args.alpha if args.alpha is not None else 0.0
    branches, cost = search_tree(
        prob['affinity'], tasks, prob['pools'], alpha=alpha,
        budget=args.budget, block_params=prob['block_params'],
        head_params=prob['head_params'], method=args.method,
        top_n=args.top_n)
    bd = tree_cost_breakdown(branches, prob['affinity'], tasks,
                             prob['pools'], alpha)
    num_blocks = len(names)
    params = count_tree_params(branches, prob['block_params'],
                               prob['head_params'])
    shared = count_tree_params(all_shared(tasks, num_blocks),
                               prob['block_params'], prob['head_params'])
    separate = count_tree_params(fully_separate(tasks, num_blocks),
                                 prob['block_params'], prob['head_params'])

    print('Tree (one line per block, shallow to deep):')
    print(format_tree(branches, names))
    width = max(len(n) for n in names + ['total'])
    print(f'\n{"block":<{width}} {"p_l":>3} {"groups":>6} {"clustering":>10} '
          f'{"complexity":>10} {"cost":>10}')
    for b, name in enumerate(names):
        print(f'{name:<{width}} {prob["pools"][b]:>3} '
              f'{len(branches[b]):>6} {bd["clustering"][b]:>10.4f} '
              f'{bd["complexity"][b]:>10.0f} {bd["block"][b]:>10.4f}')
    print(f'{"total":<{width}} {"":>3} {"":>6} '
          f'{bd["clustering_total"]:>10.4f} {bd["complexity_total"]:>10.0f} '
          f'{cost:>10.4f}   (alpha = {alpha:g})')
    print(f'\nparameters: {params:,} (all shared {shared:,}, fully separate '
          f'{separate:,})'
          + (f', budget {args.budget:,}' if args.budget is not None else ''))

    budget = f'{args.budget}' if args.budget is not None else 'none'
    header = [
        'Generated by tools/build_tree.py: the tree chosen from task '
        'affinities.',
        f'method={args.method} alpha={alpha:g} budget={budget} '
        f'top_n={args.top_n} cost={cost:.6g} params={params}',
    ]
    write_tree_config(args.out, args.config, branches, tasks, header, names)
    print(f'config: {args.out}')
    png = None
    if not args.no_draw:
        png = osp.splitext(args.out)[0] + '.png'
        draw_tree(branches, png, tasks, names,
                  title=f'alpha={alpha:g}, {params / 1e6:.3g}M params')
        print(f'drawing: {png}')
    return dict(branches=branches, cost=cost, params=params, png=png)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.out:
            # before the search: a path that cannot be written is refused
            # with its reason, not with a traceback at the end
            check_output_file(args.out)
        prob = load_problem(args.affinity, args.config)
        if prob['note']:
            print(prob['note'])
        if args.alpha_sweep:
            print_sweep(prob, args.method, args.top_n)
            print()
        if args.alpha is not None or args.budget is not None:
            build(args, prob)
    except (ValueError, FileNotFoundError, UserError) as e:
        print(f'build_tree: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
