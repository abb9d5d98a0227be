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
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from mmengine.config import Config

from branched_mtl.models.describe import (add_block_flops,
                                          describe_tree_blocks)
from branched_mtl.tree.budget import Budget, parse_size_budget
from branched_mtl.tree.builder import build_tree, sweep_alpha
from branched_mtl.tree.problem import (ModelBlocks, load_problem,
                                       read_affinity)
from branched_mtl.tree.tag_builder import build_tag_tree
from branched_mtl.tree.flops import config_input_shape, parse_input_shape
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


def _body(result) -> str:
    """A builder's text without the note, which main printed already."""
    if result.note:
        return result.text[len(result.note) + 1:]
    return result.text


def _add_flops(blocks: ModelBlocks, cfg: Config,
               input_shape: Optional[tuple]) -> ModelBlocks:
    """Per-block and head FLOPs (mmengine's analysis) into ``blocks``."""
    shape = input_shape or config_input_shape(cfg)
    try:
        return add_block_flops(blocks, cfg, shape)
    except RuntimeError as e:  # the forward pass refused the shape
        given = ','.join(str(s) for s in shape)
        reason = str(e).strip().splitlines()[0][:160] if str(e) else ''
        raise UserError(
            f'--input-shape {given}: the model cannot run an image of that '
            f'shape ({reason}); give C,H,W of one image after the data '
            'preprocessor') from None


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.out:
            # before the search: a path that cannot be written is refused
            # with its reason, not with a traceback at the end
            check_output_file(args.out)
        doc = read_affinity(args.affinity)
        cfg = Config.fromfile(args.config)
        blocks = describe_tree_blocks(cfg)
        # the affinity is checked against the model before FLOPs are counted
        note = load_problem(doc, blocks, args.config).note
        if note:
            print(note)
        if args.input_shape is not None or (
                args.budget is not None and args.budget.unit == 'flops'):
            blocks = _add_flops(blocks, cfg, args.input_shape)
        if args.alpha_sweep:
            print(_body(sweep_alpha(doc, blocks, args.config, args.method,
                                    args.top_n)))
            print()
        draw = not args.no_draw
        if args.tag_groups is not None:
            print(_body(build_tag_tree(doc, blocks, args.config,
                                       args.tag_groups, args.tag_disjoint,
                                       out=args.out, draw=draw)))
        elif args.alpha is not None or args.budget is not None:
            print(_body(build_tree(doc, blocks, args.config, args.alpha,
                                   args.budget, args.method, args.top_n,
                                   out=args.out, draw=draw)))
    except (ValueError, FileNotFoundError, UserError) as e:
        print(f'build_tree: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
