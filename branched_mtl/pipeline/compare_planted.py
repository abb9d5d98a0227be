"""A comparison scored against planted task groups (issue: a test bed where
the truth is known).

When the config names its planted groups (``groups = dict(name=[tasks])``,
as ``configs/planted_digits/`` does), every method's tree is scored per block
by the adjusted Rand index against them, and every affinity per split by how
well it ranks the pairs of one group above the pairs of different groups
(AUC and Spearman; :mod:`branched_mtl.evaluation.planted_groups`).
"""
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from branched_mtl.evaluation.planted_groups import (affinity_agreement,
                                                    tree_agreement)

AFFINITIES = ('rsa', 'tournament', 'tag')


def _tree(record: Mapping[str, Any], method: str) -> Optional[list]:
    """The method's trained tree; None for a network that is not a tree
    (or a reference)."""
    if method in ('single_task', 'all_shared'):
        return None
    node: Any = record
    for key in ('models', 'tree'):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node.get('branches') if isinstance(node, Mapping) else None


def _mean(values: Sequence[float]) -> Optional[float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def planted_scores(per_seed: Mapping[Any, Mapping[str, Any]],
                   groups: Mapping[str, Sequence[str]],
                   block_names: Sequence[str],
                   affinity_path: Any = None) -> Dict[str, Any]:
    """Trees and affinities of one budget scored against planted groups.

    Args:
        per_seed: ``{seed: {method: record}}`` (one budget's view).
        groups: The planted groups.
        block_names: The encoder's blocks.
        affinity_path: ``f(seed, method) -> path`` of a method's affinity
            file, or None to skip the affinities.

    Returns:
        ``dict(trees={method: dict(per_seed={seed: {block: ARI}}, mean=
        {block: mean ARI})}, affinities={method: dict(per_seed=..., mean=
        {split: dict(auc, spearman)})})``.
    """
    from branched_mtl.affinity import load_affinity
    trees: Dict[str, Any] = {}
    affinities: Dict[str, Any] = {}
    for seed, record in per_seed.items():
        for method, rec in record.items():
            if not isinstance(rec, Mapping) or rec.get('status') != 'done':
                continue
            branches = _tree(rec, method)
            if branches:
                entry = trees.setdefault(method, dict(per_seed={}))
                entry['per_seed'][str(seed)] = tree_agreement(
                    branches, groups, block_names)
            if method in AFFINITIES and affinity_path is not None:
                path = affinity_path(seed, method)
                if not osp.isfile(path):
                    continue
                doc = load_affinity(path)
                entry = affinities.setdefault(method, dict(per_seed={}))
                entry['per_seed'][str(seed)] = affinity_agreement(
                    doc['affinity'], doc['tasks'], groups, doc['blocks'])
    for entry in trees.values():
        blocks = list(next(iter(entry['per_seed'].values())))
        entry['mean'] = {b: _mean([s[b] for s in entry['per_seed'].values()])
                         for b in blocks}
    for entry in affinities.values():
        splits = list(next(iter(entry['per_seed'].values())))
        entry['mean'] = {
            s: {k: _mean([v[s][k] for v in entry['per_seed'].values()])
                for k in ('auc', 'spearman')} for s in splits}
    return dict(groups={k: list(v) for k, v in groups.items()},
                blocks=list(block_names), trees=trees, affinities=affinities)


def planted_markdown(scores: Mapping[str, Any],
                     labels: Mapping[str, str]) -> str:
    """Two tables: ARI of the trees per block, AUC of the affinities per
    split (means over seeds)."""
    def fmt(v: Optional[float]) -> str:
        return '—' if v is None else f'{v:.2f}'

    lines: List[str] = [
        'Planted groups: ' + '; '.join(
            f'{g}: {", ".join(ts)}' for g, ts in scores['groups'].items()),
        '']
    if scores['trees']:
        blocks = list(next(iter(scores['trees'].values()))['mean'])
        lines += ['Adjusted Rand index of each tree\'s grouping with the '
                  'planted groups, per block (mean over seeds; 1 = the '
                  'planted partition, 0 = chance or a single group):', '',
                  '| tree | ' + ' | '.join(blocks) + ' |',
                  '|' + ' --- |' * (len(blocks) + 1)]
        for method, entry in scores['trees'].items():
            lines.append(f'| {labels.get(method, method)} | ' + ' | '.join(
                fmt(entry['mean'][b]) for b in blocks) + ' |')
        lines.append('')
    if scores['affinities']:
        # every method's splits, shallow to deep (a tournament under a
        # budget measures the deep ones only)
        order = list(scores.get('blocks') or [])
        splits = sorted({s for entry in scores['affinities'].values()
                         for s in entry['mean']},
                        key=lambda s: (order.index(s) if s in order
                                       else len(order), s))
        lines += ['How each affinity ranks the pairs of one planted group '
                  'above the pairs of different groups, per split: AUC '
                  '(1 = every within pair above every across pair, 0.5 = '
                  'chance), mean over seeds:', '',
                  '| affinity | ' + ' | '.join(splits) + ' |',
                  '|' + ' --- |' * (len(splits) + 1)]
        for method, entry in scores['affinities'].items():
            lines.append(f'| {method} | ' + ' | '.join(
                fmt(entry['mean'][s]['auc']) if s in entry['mean']
                else 'not swept' for s in splits) + ' |')
    return '\n'.join(lines)
