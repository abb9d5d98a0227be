"""Paired differences between rows of two comparisons of one config.

    python tools/analysis/pair_comparisons.py A/comparison.json \
        B/comparison.json --pair 'tournament tree' 'RSA tree' \
        [--pair A_ROW B_ROW ...] [--budget-a 20%] [--budget-b 20%] \
        [--out pairs.json]

For a method run in a work dir of its own (or a comparison finished over
several sittings): each pair is row A minus row B in Δm, seed by seed, with
a 95 % bootstrap interval, over the seeds both have. Refused when the two
files' single-task models differ on a shared seed (their Δm would be
measured against different references).
"""
import argparse
import json
import os.path as osp
import sys
import warnings

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: E402,F401
from branched_mtl.utils.package import use_checkout  # noqa: E402

use_checkout(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from branched_mtl.pipeline.compare_pairs import (  # noqa: E402
    comparison_rows, pair_rows, pairs_markdown)
from branched_mtl.utils import dump_json_atomic  # noqa: E402
from branched_mtl.utils.errors import UserError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Pair rows of two comparison.json files seed by seed')
    parser.add_argument('a', help='comparison.json of the rows A')
    parser.add_argument('b', help='comparison.json of the rows B')
    parser.add_argument('--pair', nargs=2, action='append', required=True,
                        metavar=('A_ROW', 'B_ROW'),
                        help='row labels, e.g. "tournament tree" "RSA tree"')
    parser.add_argument('--budget-a', help='budget of A, for a sweep')
    parser.add_argument('--budget-b', help='budget of B, for a sweep')
    parser.add_argument('--out', help='write the pairs as JSON here')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        docs = []
        for path in (args.a, args.b):
            if not osp.isfile(path):
                raise UserError(f'comparison file not found: {path}')
            with open(path) as f:
                docs.append(json.load(f))
        rows_a = comparison_rows(docs[0], args.budget_a, args.a)
        rows_b = comparison_rows(docs[1], args.budget_b, args.b)
        results = pair_rows(rows_a, rows_b, [tuple(p) for p in args.pair],
                            (args.a, args.b))
    except (UserError, ValueError) as e:
        print(f'pair_comparisons: error: {e}', file=sys.stderr)
        return 2
    print(pairs_markdown(results))
    if args.out:
        dump_json_atomic(dict(a=args.a, b=args.b, budget_a=args.budget_a,
                              budget_b=args.budget_b, pairs=results),
                         args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
