"""Score trees and affinities against planted groups of tasks.

On a data set whose tasks come in planted groups (``PlantedDigits``: tasks of
one group read the same factors, tasks of different groups need different
invariances) the groups are the ground truth of which tasks should share.
Per split (block):

* :func:`tree_agreement`: the adjusted Rand index between the tree's
  partition of the tasks at that block and the planted groups (1: the same
  partition; about 0: no better than chance; all-shared and fully separate
  trees score 0 against any grouping of two or more groups).
* :func:`affinity_agreement`: how well an affinity ranks the pairs of tasks
  of one group above the pairs of different groups: the AUC (the share of
  (within, across) pairs of pairs ordered that way, ties counting half) and
  Spearman's rank correlation of the affinity with the same-group
  indicator.
* :func:`within_across`: mean of a pairwise matrix (an affinity, gradient
  cosines) over within-group and across-group pairs; :func:`group_means`
  the same per pair of groups.
"""
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

__all__ = ['planted_labels', 'same_group', 'tree_agreement',
           'affinity_agreement', 'within_across', 'group_means']


def planted_labels(tasks: Sequence[str],
                   groups: Mapping[str, Sequence[str]]) -> List[int]:
    """The planted group of each task, as an index in ``groups`` order.

    Raises:
        ValueError: naming a task in no group or in two.
    """
    label: Dict[str, int] = {}
    for g, members in enumerate(groups.values()):
        for task in members:
            if task in label:
                raise ValueError(f'task {task!r} is in two planted groups')
            label[task] = g
    missing = [t for t in tasks if t not in label]
    if missing:
        raise ValueError(f'tasks {missing} are in no planted group (groups: '
                         f'{dict(groups)})')
    return [label[t] for t in tasks]


def same_group(tasks: Sequence[str],
               groups: Mapping[str, Sequence[str]]) -> np.ndarray:
    """``(N, N)`` bool: whether tasks i and j are in one planted group."""
    labels = np.asarray(planted_labels(tasks, groups))
    return labels[:, None] == labels[None, :]


def tree_agreement(branches: Sequence[Sequence[Sequence[str]]],
                   groups: Mapping[str, Sequence[str]],
                   block_names: Optional[Sequence[str]] = None
                   ) -> Dict[str, float]:
    """Adjusted Rand index of the tree's grouping with the planted one,
    per block.

    Args:
        branches: The tree: per block, a partition of the tasks into groups
            (``model.encoder.branches``).
        groups: The planted groups, ``{group: [task, ...]}``.
        block_names: Names of the blocks (default ``block0`` ...).

    Returns:
        ``{block: ARI}``, in block order.
    """
    if not branches:
        raise ValueError('tree_agreement: the tree has no blocks')
    names = list(block_names or [f'block{b}' for b in range(len(branches))])
    if len(names) != len(branches):
        raise ValueError(f'tree_agreement: {len(names)} block names for a '
                         f'tree of {len(branches)} blocks')
    tasks = sorted(t for group in branches[0] for t in group)
    planted = planted_labels(tasks, groups)
    result = {}
    for name, partition in zip(names, branches):
        of = {t: g for g, group in enumerate(partition) for t in group}
        if sorted(of) != tasks:
            raise ValueError(f'tree_agreement: block {name} partitions '
                             f'{sorted(of)}, not the tasks {tasks}')
        result[name] = float(adjusted_rand_score(planted,
                                                 [of[t] for t in tasks]))
    return result


def _pairs(matrix: np.ndarray) -> np.ndarray:
    n = matrix.shape[-1]
    return matrix[..., np.triu_indices(n, k=1)[0], np.triu_indices(n, k=1)[1]]


def _as_splits(matrix, tasks: Sequence[str]) -> np.ndarray:
    given = np.asarray(matrix, dtype=np.float64)
    arr = given[None] if given.ndim == 2 else given
    n = len(tasks)
    if arr.ndim != 3 or arr.shape[1:] != (n, n):
        raise ValueError(f'expected an (N, N) or (L, N, N) matrix for '
                         f'{n} tasks, got shape {given.shape}')
    if not np.isfinite(arr).all():
        raise ValueError('the matrix holds NaN or infinite values')
    return arr


def affinity_agreement(affinity, tasks: Sequence[str],
                       groups: Mapping[str, Sequence[str]],
                       layers: Optional[Sequence[str]] = None
                       ) -> Dict[str, Dict[str, float]]:
    """Rank agreement of an affinity with the planted groups, per split.

    Args:
        affinity: ``(L, N, N)`` (or ``(N, N)``) affinities, larger = closer
            (the affinity file's ``affinity``).
        tasks: The N tasks in the matrix's order.
        groups: The planted groups.
        layers: Names of the L splits (default ``split0`` ...).

    Returns:
        ``{split: dict(auc=..., spearman=...)}``: ``auc`` is the share of
        (within-group pair, across-group pair) combinations where the
        within pair has the larger affinity (ties half), 1 when every
        within pair ranks above every across pair, 0.5 at chance;
        ``spearman`` the rank correlation of the pairs' affinities with the
        same-group indicator (NaN when the affinity is constant).
    """
    arr = _as_splits(affinity, tasks)
    names = list(layers or [f'split{s}' for s in range(len(arr))])
    if len(names) != len(arr):
        raise ValueError(f'{len(names)} split names for {len(arr)} '
                         'affinity matrices')
    same = _pairs(same_group(tasks, groups))
    if same.all() or not same.any():
        raise ValueError('the planted groups give no within-group pair or '
                         'no across-group pair to compare')
    result = {}
    for name, mat in zip(names, arr):
        values = _pairs(mat)
        within, across = values[same], values[~same]
        diff = within[:, None] - across[None, :]
        auc = float(((diff > 0).sum() + 0.5 * (diff == 0).sum())
                    / diff.size)
        if np.ptp(values) == 0:
            rho = float('nan')
        else:
            rho = float(spearmanr(values, same.astype(float))[0])
        result[name] = dict(auc=auc, spearman=rho)
    return result


def within_across(matrix, tasks: Sequence[str],
                  groups: Mapping[str, Sequence[str]]) -> Dict[str, list]:
    """Mean of a pairwise matrix over within- and across-group pairs.

    Args:
        matrix: ``(N, N)`` or ``(L, N, N)``, e.g. gradient cosines per block.
        tasks: The N tasks in the matrix's order.
        groups: The planted groups.

    Returns:
        ``dict(within=[...], across=[...])``, one mean per matrix (the
        diagonal left out).
    """
    arr = _as_splits(matrix, tasks)
    same = _pairs(same_group(tasks, groups))
    values = _pairs(arr)
    return dict(within=[float(v[same].mean()) if same.any() else
                        float('nan') for v in values],
                across=[float(v[~same].mean()) if (~same).any() else
                        float('nan') for v in values])


def group_means(matrix, tasks: Sequence[str],
                groups: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Mean of a pairwise matrix per pair of planted groups.

    Args:
        matrix: ``(N, N)`` or ``(L, N, N)``.
        tasks: The N tasks in the matrix's order.
        groups: The planted groups (G of them).

    Returns:
        ``(L, G, G)``: entry ``[l, g, h]`` is the mean over pairs of two
        different tasks, one of group g and one of group h (NaN for a group
        of one task on the diagonal).
    """
    arr = _as_splits(matrix, tasks)
    labels = np.asarray(planted_labels(tasks, groups))
    off = ~np.eye(len(tasks), dtype=bool)
    out = np.full((len(arr), len(groups), len(groups)), np.nan)
    for g in range(len(groups)):
        for h in range(len(groups)):
            mask = off & (labels[:, None] == g) & (labels[None, :] == h)
            if mask.any():
                out[:, g, h] = arr[:, mask].mean(axis=1)
    return out
