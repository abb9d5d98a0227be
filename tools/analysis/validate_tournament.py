"""Validate the tournament's cost cutters against the paper's setting.

Runs of ``tools/sweep_recombination.py`` with the cutters (``--iters 60
--data-fraction 0.25``, the defaults of ``branch.sweep``) and with the
single-task schedule on all the data (the paper's setting, at least two
seeds) are compared split by split:

* ``cut_vs_full``: mean Spearman rank correlation of the off-diagonal
  affinities (every pair of distinct tasks) of each cut run with each full
  run; ``full_vs_full``: the same between the full runs' seeds. The cut
  *passes* at a split when ``cut_vs_full >= full_vs_full``
  (:func:`branched_mtl.affinity.cut_agreement`).
* ``separation`` of each setting's runs: whether its pairs differ by more
  than twice the seeds' spread (:func:`branched_mtl.affinity.separation`).

Example::

    python tools/analysis/validate_tournament.py \\
        --cut W/cut_s0 W/cut_s1 --full W/full_s0 W/full_s1 \\
        --out docs/figures/tournament_validation.json

A sweep folder stands for its ``affinity_tournament.json``; an affinity
JSON file is read as given. Prints a Markdown table and writes the JSON
(atomically) with every value.
"""
import argparse
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from branched_mtl.affinity import cut_agreement, load_affinity, separation
from branched_mtl.apis.sweep import AFFINITY_FILE
from branched_mtl.utils.io import dump_json_atomic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Does a cut tournament sweep rank the task pairs like '
        'the paper\'s setting?')
    parser.add_argument('--cut', nargs='+', required=True,
                        help='sweep folders (or affinity files) of the cut '
                        'setting')
    parser.add_argument('--full', nargs='+', required=True,
                        help='two or more of the full setting (seeds)')
    parser.add_argument('--out', help='JSON file for every value')
    return parser.parse_args(argv)


def _load(path: str) -> Dict[str, Any]:
    if osp.isdir(path):
        path = osp.join(path, AFFINITY_FILE)
    return load_affinity(path)


def _pairs(affinity: np.ndarray) -> List[List[float]]:
    rows, cols = np.triu_indices(affinity.shape[1], k=1)
    return affinity[:, rows, cols].tolist()


def validate(cut: List[str], full: List[str]) -> Dict[str, Any]:
    """Every figure of the validation from the runs' affinity files.

    Args:
        cut: Sweep folders or affinity files of the cut setting.
        full: Two or more of the full setting.

    Returns:
        ``tasks``, ``splits``, ``agreement`` (:func:`cut_agreement`),
        ``separation`` per setting (``cut`` needs two runs), ``pairs`` (the
        task pairs' names) and ``pair_values`` per setting and run.
    """
    docs = {'cut': [_load(p) for p in cut], 'full': [_load(p) for p in full]}
    first = docs['full'][0]
    for name, runs in docs.items():
        for path, doc in zip(cut if name == 'cut' else full, runs):
            if doc['tasks'] != first['tasks'] or \
                    doc['blocks'] != first['blocks']:
                raise ValueError(
                    f'{path}: tasks {doc["tasks"]} / splits {doc["blocks"]} '
                    f'differ from {full[0]}\'s {first["tasks"]} / '
                    f'{first["blocks"]}')
    tasks, splits = first['tasks'], first['blocks']
    arrays = {k: [d['affinity'] for d in v] for k, v in docs.items()}
    rows, cols = np.triu_indices(len(tasks), k=1)
    return dict(
        tasks=tasks, splits=splits, runs=dict(cut=cut, full=full),
        agreement=cut_agreement(arrays['cut'], arrays['full'], splits),
        separation={k: separation(v, splits) for k, v in arrays.items()
                    if len(v) >= 2},
        pairs=[f'{tasks[i]}~{tasks[j]}' for i, j in zip(rows, cols)],
        pair_values={k: [_pairs(a) for a in v] for k, v in arrays.items()})


def markdown(result: Dict[str, Any]) -> str:
    """The validation as a Markdown table, one row per split."""
    lines = ['| split | cut vs full (rho) | full vs full (rho) | passes | '
             'cut separates | full separates |',
             '| --- | --- | --- | --- | --- | --- |']
    sep = result['separation']
    for k, split in enumerate(result['splits']):
        row = result['agreement']['per_split'][k]

        def says(setting: str) -> str:
            if setting not in sep:
                return 'n/a (one run)'
            s = sep[setting]['per_split'][k]
            return (f'{"yes" if s["separates"] else "no"} (range '
                    f'{s["range"]:.3f}, spread {s["spread"]:.3f})')
        lines.append(f'| {split} | {row["cut_vs_full"]:.2f} | '
                     f'{row["full_vs_full"]:.2f} | '
                     f'{"yes" if row["passes"] else "**no**"} | '
                     f'{says("cut")} | {says("full")} |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        result = validate(args.cut, args.full)
    except (OSError, ValueError) as e:
        print(f'validate_tournament: error: {e}', file=sys.stderr)
        return 2
    print(markdown(result))
    if args.out:
        dump_json_atomic(result, args.out)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
