"""Plot an affinity file: per-split heat maps and affinity against depth.

Example::

    python tools/analysis/plot_affinity.py work_dirs/affinity.json \\
        --out-dir work_dirs/affinity_plots

writes ``affinity_heatmaps.png`` and ``affinity_vs_depth.png`` (the latter
needs at least two tasks).
"""
import argparse
import os
import sys
from typing import List, Optional

from branched_mtl.affinity import load_affinity
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.paths import check_work_dir
from branched_mtl.visualization import (plot_affinity_heatmaps,
                                        plot_affinity_vs_depth)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot the task affinity of an affinity JSON file.')
    parser.add_argument('affinity', metavar='AFFINITY.json')
    parser.add_argument('--out-dir', required=True,
                        help='directory for the PNG files')
    parser.add_argument('--label', help='legend label of the mean curve '
                        '(e.g. the data set name)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        # values out of range (1e308 ...) are refused here, before plotting
        doc = load_affinity(args.affinity)
        check_work_dir(args.out_dir, '--out-dir')
    except (OSError, ValueError, UserError) as e:
        sys.exit(f'plot_affinity: error: {e}')
    tasks, layers, affinity = doc['tasks'], doc['blocks'], doc['affinity']
    title = f'{doc["method"]} affinity'
    heatmaps = os.path.join(args.out_dir, 'affinity_heatmaps.png')
    plot_affinity_heatmaps(affinity, tasks, layers, heatmaps, title=title)
    print(f'wrote {heatmaps}')
    if len(tasks) < 2:
        print('one task only: no off-diagonal affinity to plot against depth')
        return
    depth = os.path.join(args.out_dir, 'affinity_vs_depth.png')
    plot_affinity_vs_depth(affinity, tasks, layers, depth, label=args.label,
                           title=title)
    print(f'wrote {depth}')


if __name__ == '__main__':
    main()
