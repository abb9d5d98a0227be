"""Repeatability of a task affinity across runs (the paper's 86.2 % figure).

Two runs agree on a pair of task pairs ``((i, j), (k, l))`` at a split when
both order the two affinities the same way (``A[i, j] > A[k, l]`` in both,
``<`` in both, or equal in both). The repeatability at a split is the
fraction of pairs of distinct task pairs on which the runs agree; with no
ties it equals ``(1 + tau) / 2`` for Kendall's tau of the two affinity lists.
"""
from itertools import combinations
from typing import Dict, List, Sequence

import numpy as np


def _pair_values(affinity: np.ndarray) -> np.ndarray:
    """(L, P): the affinity of every pair of distinct tasks, per block."""
    n = affinity.shape[1]
    rows, cols = np.triu_indices(n, k=1)
    return affinity[:, rows, cols]


def order_agreement(first, second) -> np.ndarray:
    """Per block, the fraction of pairs of task pairs ordered alike.

    Args:
        first: (L, N, N) affinity of one run.
        second: (L, N, N) affinity of another run, same task order.

    Returns:
        (L,) fractions in [0, 1].

    Raises:
        ValueError: on different shapes or fewer than three tasks (two
            tasks have one pair: nothing to order).
    """
    a, b = np.asarray(first, float), np.asarray(second, float)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f'affinities of shapes {a.shape} and {b.shape} '
                         'cannot be compared (need the same (L, N, N))')
    if a.shape[1] < 3:
        raise ValueError('repeatability needs at least 3 tasks (2 tasks '
                         'have a single pair: no order)')
    pa, pb = _pair_values(a), _pair_values(b)
    p, q = np.triu_indices(pa.shape[1], k=1)
    same = np.sign(pa[:, p] - pa[:, q]) == np.sign(pb[:, p] - pb[:, q])
    return same.mean(axis=1)


def repeatability(affinities: Sequence, tasks: Sequence[str] = (),
                  ) -> Dict[str, object]:
    """Order agreement over every pair of runs.

    Args:
        affinities: Two or more (L, N, N) affinities in the same task order.
        tasks: Task names (only checked for length).

    Returns:
        ``per_block`` (L,) mean agreement over run pairs, ``per_pair``
        {"i-j": (L,)} for each pair of runs, and ``mean`` over blocks and
        run pairs.
    """
    if len(affinities) < 2:
        raise ValueError('repeatability needs the affinities of at least '
                         'two runs')
    arrays = [np.asarray(a, float) for a in affinities]
    if tasks and arrays[0].shape[1] != len(tasks):
        raise ValueError(f'affinity has {arrays[0].shape[1]} tasks, '
                         f'{len(tasks)} names given')
    per_pair: Dict[str, List[float]] = {}
    for i, j in combinations(range(len(arrays)), 2):
        per_pair[f'{i}-{j}'] = order_agreement(arrays[i], arrays[j]).tolist()
    stacked = np.array(list(per_pair.values()))
    return dict(per_block=stacked.mean(axis=0).tolist(),
                per_pair=per_pair, mean=float(stacked.mean()))


def separation(affinities: Sequence, layers: Sequence[str] = (),
               factor: float = 2.0) -> Dict[str, object]:
    """Whether an affinity tells task pairs apart beyond the seeds' spread.

    At each split, the mean affinity of every pair of distinct tasks over
    the runs (seeds) is compared with how much one pair varies from run to
    run. The split *separates* when the range of the pair means (largest
    minus smallest) exceeds ``factor`` times the mean of the pairs' sample
    standard deviations over runs. A split that does not separate orders
    its task pairs by noise: a tree chosen there is chosen at random.

    Args:
        affinities: Two or more (L, N, N) affinities of the same tasks.
        layers: The split names (only checked for length).
        factor: How many standard deviations the range must exceed.

    Returns:
        ``per_split``: list of dicts with ``range`` (of the pair means),
        ``spread`` (mean per-pair std over runs) and ``separates``;
        ``separates_all`` (every split separates); ``flat`` (the splits
        that do not, by index).
    """
    arrays = np.stack([np.asarray(a, float) for a in affinities])
    if arrays.shape[0] < 2:
        raise ValueError('separation needs the affinities of at least two '
                         'runs (their spread is the yardstick)')
    if arrays.shape[2] < 3 or arrays.shape[2] != arrays.shape[3]:
        raise ValueError('separation needs (L, N, N) affinities of at least '
                         f'3 tasks, got {arrays.shape[1:]}')
    if layers and len(layers) != arrays.shape[1]:
        raise ValueError(f'{len(layers)} split names for '
                         f'{arrays.shape[1]} splits')
    rows, cols = np.triu_indices(arrays.shape[2], k=1)
    pairs = arrays[:, :, rows, cols]            # (runs, L, P)
    means = pairs.mean(axis=0)                  # (L, P)
    spread = pairs.std(axis=0, ddof=1).mean(axis=1)  # (L,)
    ranges = means.max(axis=1) - means.min(axis=1)
    per_split = [dict(range=float(r), spread=float(s),
                      separates=bool(r > factor * s))
                 for r, s in zip(ranges, spread)]
    flat = [i for i, p in enumerate(per_split) if not p['separates']]
    return dict(per_split=per_split, separates_all=not flat, flat=flat,
                factor=factor)


def cut_agreement(cut: Sequence, full: Sequence,
                  layers: Sequence[str] = ()) -> Dict[str, object]:
    """Whether a cheaper sweep ranks the task pairs like the full one.

    The tournament's cost cutters (fewer iterations, part of the data)
    change what a recombined run learns. At each split the off-diagonal
    affinities (every pair of distinct tasks) of each cut run are rank-
    correlated (Spearman) with those of each full run, and the mean is
    held against the mean rank correlation between the full runs
    themselves (their seeds' agreement, the best a cheaper measure can be
    asked for). The cut *passes* at a split when it agrees with the full
    runs at least as well as they agree with each other.

    Args:
        cut: One or more (L, N, N) affinities of the cut sweep.
        full: Two or more (L, N, N) affinities of the full sweep (seeds).
        layers: The split names (only checked for length).

    Returns:
        ``per_split``: dicts with ``cut_vs_full`` and ``full_vs_full``
        (mean Spearman rho; NaN where a run's pairs are all equal) and
        ``passes``; ``passes_all``; ``failed`` (split indices).
    """
    from scipy.stats import spearmanr
    cuts = [np.asarray(a, float) for a in cut]
    fulls = [np.asarray(a, float) for a in full]
    if not cuts or len(fulls) < 2:
        raise ValueError('cut_agreement needs at least one cut run and two '
                         'full runs (their agreement is the yardstick)')
    shapes = {a.shape for a in cuts + fulls}
    if len(shapes) != 1:
        raise ValueError(f'affinities of different shapes {sorted(shapes)}')
    shape = shapes.pop()
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 3:
        raise ValueError('cut_agreement needs (L, N, N) affinities of at '
                         f'least 3 tasks, got {shape}')
    if layers and len(layers) != shape[0]:
        raise ValueError(f'{len(layers)} split names for {shape[0]} splits')

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return float('nan')  # no order to compare
        return float(spearmanr(a, b).statistic)

    cut_pairs = [_pair_values(a) for a in cuts]
    full_pairs = [_pair_values(a) for a in fulls]
    per_split = []
    for layer in range(shape[0]):
        across = [rho(c[layer], f[layer]) for c in cut_pairs
                  for f in full_pairs]
        within = [rho(full_pairs[i][layer], full_pairs[j][layer])
                  for i, j in combinations(range(len(fulls)), 2)]
        a, w = float(np.mean(across)), float(np.mean(within))
        per_split.append(dict(cut_vs_full=a, full_vs_full=w,
                              passes=bool(a >= w)))
    failed = [i for i, p in enumerate(per_split) if not p['passes']]
    return dict(per_split=per_split, passes_all=not failed, failed=failed)
