"""Build a branched multi-task network from an affinity file (step 4).

    python tools/build_tree.py AFFINITY.json BASE_CONFIG.py \
        (--alpha A | --budget 25M|3.5GFLOPs) [--method auto|exact|beam] \
        [--top-n 3] [--input-shape C,H,W] --out NEW_CONFIG.py
    python tools/build_tree.py AFFINITY.json BASE_CONFIG.py --alpha-sweep
    python tools/build_tree.py TAG_AFFINITY.json BASE_CONFIG.py \
        --tag-groups K [--tag-disjoint] --out NEW_CONFIG.py

Chooses how the encoder's blocks are shared (the tree of least cost
C = sum_l C_clustering^l + alpha * C_complexity^l, optionally within a
parameter budget) and writes NEW_CONFIG.py, which inherits BASE_CONFIG.py and
sets only ``model.encoder.branches``, so ``tools/train.py NEW_CONFIG.py``
trains the chosen network. A drawing of the tree goes to NEW_CONFIG.png.
A budget in FLOPs per image (``3.5GFLOPs``, ``800MFLOPs``) counts each
block's FLOPs with mmengine's analysis at the config's input size (its first
test image, or ``--input-shape``) and searches the same way.
``--tag-groups K`` is TAG's own selection instead of the tree search (a
``tag`` affinity file): at most K networks, each task served by the group
that gives it the highest lookahead affinity, one network per group from
the input on.
``--alpha-sweep`` prints the distinct trees over a range of alpha: the
trade-off between parameters and clustering cost to choose alpha from.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

import numpy as np

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
from branched_mtl.tree.budget import Budget, parse_size_budget
from branched_mtl.tree.flops import (config_input_shape, count_tree_flops,
                                     format_flops, parse_input_shape,
                                     tree_flops_info)
from branched_mtl.tree.draw import draw_tree
# submodules, not the package namespace: tools/branch.py loads this file
# into a process that may have imported branched_mtl.utils earlier
from branched_mtl.utils.console import quiet_known_warnings
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.paths import check_output_file


def parse_budget(text: str) -> Budget:
    """'25M' -> 25_000_000 parameters, '300K', '1.5M', plain ints;
    '3.5GFLOPs' -> 3_500_000_000 FLOPs per image."""
    try:
        budget = parse_size_budget(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f'{text[:40]!r} is too large to be a budget') from None
    if budget.value < 1:
        # '0.5' would otherwise become a budget of 0 parameters
        raise argparse.ArgumentTypeError(
            f'{text[:40]!r} is {budget.value} {budget.what}, no network '
            'fits; give a parameter count like 25M, 300K or 1200000, or '
            'FLOPs like 3.5GFLOPs')
    return budget


def _input_shape(text: str) -> tuple:
    try:
        return parse_input_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
                        help='budget of the whole model: parameters (25M) '
                        'or FLOPs per image (3.5GFLOPs)')
    parser.add_argument('--input-shape', type=_input_shape,
                        help='C,H,W of an input image for FLOPs (default: '
                        'the config\'s first test image)')
    parser.add_argument('--tag-groups', type=int, metavar='K',
                        help='TAG\'s own selection from a tag affinity '
                        'file: at most K separate networks')
    parser.add_argument('--tag-disjoint', action='store_true',
                        help='with --tag-groups: only disjoint groups')
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
    if args.tag_groups is not None:
        if building:
            parser.error('--tag-groups is TAG\'s selection, not the tree '
                         'search: leave out --alpha and --budget')
        if args.tag_groups < 1:
            parser.error(f'--tag-groups must be >= 1, got {args.tag_groups}')
        building = True
    elif args.tag_disjoint:
        parser.error('--tag-disjoint goes with --tag-groups K')
    if not building and not args.alpha_sweep:
        parser.error('give --alpha and/or --budget (or --alpha-sweep, or '
                     '--tag-groups)')
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
    return dict(affinity=aff, tasks=tasks, note=note, doc=doc,
                model_cfg=model_cfg, cfg=cfg, **{
                    k: info[k] for k in ('block_names', 'block_params',
                                         'pools', 'head_params')})


def add_flops(prob: dict, input_shape: Optional[tuple] = None) -> dict:
    """Per-block and head FLOPs (mmengine's analysis) into ``prob``."""
    shape = input_shape or config_input_shape(prob['cfg'])
    try:
        info = tree_flops_info(prob['model_cfg'], shape)
    except RuntimeError as e:  # the forward pass refused the shape
        given = ','.join(str(s) for s in shape)
        reason = str(e).strip().splitlines()[0][:160] if str(e) else ''
        raise UserError(
            f'--input-shape {given}: the model cannot run an image of that '
            f'shape ({reason}); give C,H,W of one image after the data '
            'preprocessor') from None
    prob.update(block_flops=info['block_flops'],
                head_flops=info['head_flops'],
                input_shape=info['input_shape'])
    return prob


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
    flops_budget = args.budget is not None and args.budget.unit == 'flops'
    # a FLOPs budget: the same search over FLOPs of one copy of each block
    weights, heads = ((prob['block_flops'], prob['head_flops'])
                      if flops_budget else
                      (prob['block_params'], prob['head_params']))
    branches, cost = search_tree(
        prob['affinity'], tasks, prob['pools'], alpha=alpha,
        budget=None if args.budget is None else args.budget.value,
        block_params=weights, head_params=heads, method=args.method,
        top_n=args.top_n,
        budget_unit='FLOPs' if flops_budget else 'parameters')
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
          f'{separate:,})' + (f', budget {args.budget.value:,}'
                              if args.budget is not None and not flops_budget
                              else ''))
    flops = _print_flops(prob, branches, args.budget if flops_budget
                         else None)

    budget = f'{args.budget}' if args.budget is not None else 'none'
    header = [
        'Generated by tools/build_tree.py: the tree chosen from task '
        'affinities.',
        f'method={args.method} alpha={alpha:g} budget={budget} '
        f'top_n={args.top_n} cost={cost:.6g} params={params}'
        + (f' flops={flops}' if flops is not None else ''),
    ]
    png = _write(args, branches, tasks, names, header,
                 f'alpha={alpha:g}, {params / 1e6:.3g}M params')
    return dict(branches=branches, cost=cost, params=params, flops=flops,
                png=png)


def _print_flops(prob: dict, branches, budget: Optional[Budget] = None
                 ) -> Optional[int]:
    """Print the tree's FLOPs per image when they were counted."""
    if 'block_flops' not in prob:
        return None
    num_blocks = len(prob['block_names'])
    tasks = prob['tasks']

    def count(tree) -> int:
        return count_tree_flops(tree, prob['block_flops'],
                                prob['head_flops'])

    flops = count(branches)
    shape = 'x'.join(str(s) for s in prob['input_shape'])
    print(f'FLOPs per {shape} image: {flops:,} ({format_flops(flops)}; all '
          f'shared {format_flops(count(all_shared(tasks, num_blocks)))}, '
          'fully separate '
          f'{format_flops(count(fully_separate(tasks, num_blocks)))})'
          + (f', budget {budget.value:,}' if budget is not None else ''))
    return flops


def _write(args: argparse.Namespace, branches, tasks, names, header,
           title: str) -> Optional[str]:
    write_tree_config(args.out, args.config, branches, tasks, header, names)
    print(f'config: {args.out}')
    png = None
    if not args.no_draw:
        png = osp.splitext(args.out)[0] + '.png'
        draw_tree(branches, png, tasks, names, title=title)
        print(f'drawing: {png}')
    return png


def build_tag(args: argparse.Namespace, prob: dict) -> dict:
    """TAG's own selection (its whole-encoder Z, the deepest split) and the
    tree of separate networks it gives."""
    from branched_mtl.affinity.tag import (select_tag_groups,
                                           tag_groups_to_branches,
                                           tag_lookahead)
    tasks, names = prob['tasks'], prob['block_names']
    doc = prob['doc']
    z_all = tag_lookahead(doc, args.affinity)
    # the file's task order -> the model's
    idx = [doc['tasks'].index(t) for t in tasks]
    z = z_all[-1][np.ix_(idx, idx)]
    sel = select_tag_groups(z, tasks, args.tag_groups,
                            disjoint=args.tag_disjoint)
    branches = tag_groups_to_branches(sel, tasks, len(names))
    print(f'TAG selection (at most {args.tag_groups} networks'
          + (', disjoint' if args.tag_disjoint else '') + f'; '
          f'{sel["sets"]:,} sets of groups evaluated; Z of split '
          f'{doc["layers"][-1]!r}, the whole encoder):')
    for g, group in enumerate(sel['groups']):
        served = [t for t in tasks if sel['serving'][t] == g]
        print(f'  network {g}: {" ".join(group)}   serves: '
              f'{" ".join(served) or "-"}')
    print(f'mean best score: {sel["score"]:.6g}')
    unserved = [g for g in range(len(sel['groups']))
                if g not in sel['serving'].values()]
    if unserved or sum(len(g) for g in sel['groups']) > len(tasks):
        print('note: TAG\'s groups overlap; a tree trains each task in the '
              'one network that serves it')
    params = count_tree_params(branches, prob['block_params'],
                               prob['head_params'])
    print(f'parameters: {params:,}')
    flops = _print_flops(prob, branches)
    header = [
        'Generated by tools/build_tree.py --tag-groups: TAG\'s selection '
        '(separate networks from the input).',
        f'tag_groups={args.tag_groups} disjoint={args.tag_disjoint} '
        f'score={sel["score"]:.6g} params={params}'
        + (f' flops={flops}' if flops is not None else ''),
    ]
    png = _write(args, branches, tasks, names, header,
                 f'TAG, {len(branches[0])} networks, '
                 f'{params / 1e6:.3g}M params')
    return dict(branches=branches, params=params, flops=flops, png=png,
                selection=sel)


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
        if args.input_shape is not None or (
                args.budget is not None and args.budget.unit == 'flops'):
            add_flops(prob, args.input_shape)
        if args.alpha_sweep:
            print_sweep(prob, args.method, args.top_n)
            print()
        if args.tag_groups is not None:
            build_tag(args, prob)
        elif args.alpha is not None or args.budget is not None:
            build(args, prob)
    except (ValueError, FileNotFoundError, UserError) as e:
        print(f'build_tree: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
