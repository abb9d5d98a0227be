"""The cost of a tree (step 4 of the method, eq. 1 and 2 of the paper).

For a tree over L blocks::

    C = sum_l  C_clustering^l + alpha * C_complexity^l

``C_clustering^l`` is the mean over the groups at block l of the largest
distance ``1 - A[l, i, j]`` between two different tasks i != j of the group (a
one-task group contributes 0; the diagonal A[l, i, i] never counts);
``C_complexity^l = (b_l - 1) * 2 ** p_l`` with ``b_l`` the number of groups at
block l and ``p_l`` the number of down-sampling steps from block l's input to
the encoder's output, block l's own included (``pools``).
"""
import math
from numbers import Real
from typing import Dict, List, Sequence

import numpy as np

from .branches import Branches, validate_branches

# Affinities are read from JSON text; an asymmetry below this is rounding.
SYMMETRY_ATOL = 1e-6
# Tournament affinities lie in (0, 1) and RSA (Spearman) ones in [-1, 1].
# Bounding A by 1 keeps every distance 1 - A non-negative, which is what makes
# alpha = 0 pick fully separate networks and a large alpha the shared one.
# Only the off-diagonal is bounded: the cost never reads A[l, i, i], and a
# tournament affinity's diagonal P[i, i] is legitimately below 1.
RANGE_ATOL = 1e-6


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise ValueError if it is not >= 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise ValueError(f'alpha must be a number >= 0, got {alpha!r}')
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(
            f'alpha must be a finite number >= 0 (it weighs the complexity '
            f'cost), got {alpha!r}')
    return alpha


def check_pools(pools: Sequence[int], num_blocks: int) -> List[int]:
    """Return ``pools`` as a list of ints >= 0 of length ``num_blocks``."""
    if isinstance(pools, (str, bytes)) or not isinstance(
            pools, (Sequence, np.ndarray)):
        raise ValueError(
            f'pools must be a list of {num_blocks} ints (down-sampling steps '
            f'per block), got {type(pools).__name__}')
    pools = list(pools)
    if len(pools) != num_blocks:
        raise ValueError(
            f'pools has {len(pools)} entries but the affinity has '
            f'{num_blocks} blocks (one entry per block)')
    out = []
    for b, p in enumerate(pools):
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) \
                or p < 0:
            raise ValueError(
                f'pools[{b}] must be an int >= 0 (down-sampling steps), '
                f'got {p!r}')
        out.append(int(p))
    return out


def check_affinity(affinity, tasks: Sequence[str]) -> np.ndarray:
    """Check an affinity tensor against the task list.

    Args:
        affinity: Array or nested list of shape (L, N, N); ``A[l, i, j]`` is
            the affinity of tasks i and j at block l.
        tasks: The N task names, in the order of the affinity's rows.

    Returns:
        The affinity as a float64 array of shape (L, N, N).

    Raises:
        ValueError: on a wrong shape, a non-finite value (diagonal included),
            an off-diagonal value outside [-1, 1], or a block that is not
            symmetric. The diagonal may be anything finite: the cost ignores
            it.
    """
    tasks = list(tasks)
    try:
        arr = np.asarray(affinity, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f'affinity must be a (blocks, tasks, tasks) array of numbers; it '
            f'could not be read as one ({e})') from None
    n = len(tasks)
    if arr.ndim != 3 or arr.shape[1] != n or arr.shape[2] != n:
        raise ValueError(
            f'affinity has shape {arr.shape} but must be (blocks, {n}, {n}) '
            f'for the {n} tasks {tasks}')
    if arr.shape[0] == 0:
        raise ValueError('affinity has 0 blocks')
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        l, i, j = (int(v) for v in bad[0])
        raise ValueError(
            f'affinity has {len(bad)} non-finite value(s) (NaN or inf), '
            f'first at block {l}, tasks {tasks[i]!r}, {tasks[j]!r}: '
            f'{arr[l, i, j]}')
    off = ~np.eye(n, dtype=bool)
    vals = arr[:, off]
    if vals.size and (vals.max() > 1 + RANGE_ATOL
                      or vals.min() < -1 - RANGE_ATOL):
        l, k = np.unravel_index(np.argmax(np.abs(vals)), vals.shape)
        i, j = np.argwhere(off)[k]
        raise ValueError(
            f'affinity values must lie in [-1, 1] (distance = 1 - affinity); '
            f'block {l}, tasks {tasks[i]!r}, {tasks[j]!r} has '
            f'{arr[l, i, j]}')
    asym = np.abs(arr - arr.transpose(0, 2, 1))
    if asym.size and asym.max() > SYMMETRY_ATOL:
        l, i, j = np.unravel_index(np.argmax(asym), asym.shape)
        raise ValueError(
            f'affinity is not symmetric: block {l}, A[{tasks[i]!r}, '
            f'{tasks[j]!r}] = {arr[l, i, j]} but A[{tasks[j]!r}, '
            f'{tasks[i]!r}] = {arr[l, j, i]} (difference '
            f'{asym[l, i, j]:.3g} > {SYMMETRY_ATOL})')
    return arr


def reorder_affinity(affinity, file_tasks: Sequence[str],
                     tasks: Sequence[str]) -> np.ndarray:
    """Reorder an affinity tensor's task axes from ``file_tasks`` to ``tasks``.

    Raises:
        ValueError: if the two lists are not the same set of names.
    """
    file_tasks, tasks = list(file_tasks), list(tasks)
    if len(set(file_tasks)) != len(file_tasks):
        raise ValueError(f'the affinity lists a task twice: {file_tasks}')
    if set(file_tasks) != set(tasks) or len(file_tasks) != len(tasks):
        only_file = sorted(set(file_tasks) - set(tasks))
        only_cfg = sorted(set(tasks) - set(file_tasks))
        raise ValueError(
            f'the affinity\'s tasks {file_tasks} are not the model\'s tasks '
            f'{tasks}: only in the affinity {only_file}, only in the model '
            f'{only_cfg}')
    arr = np.asarray(affinity, dtype=np.float64)
    idx = [file_tasks.index(t) for t in tasks]
    return arr[:, idx][:, :, idx]


def group_distance(dist_l: np.ndarray, index: Sequence[int]) -> float:
    """The clustering cost of one group: its largest distance between two
    different tasks.

    A task's distance to itself, ``1 - A[i, i]``, is left out: a tournament
    affinity's diagonal is ``P[i, i] < 1``, and counting it would charge a
    group for a task another task's encoder serves as well as its own.

    Args:
        dist_l: (N, N) distances ``1 - A`` at one block.
        index: Task indices of the group.

    Returns:
        The largest ``dist_l[i, j]`` over i != j in the group; 0 for one task.
    """
    index = list(index)
    if len(index) < 2:
        return 0.0
    sub = dist_l[np.ix_(index, index)]
    return float(sub[~np.eye(len(index), dtype=bool)].max())


def tree_cost_breakdown(branches: Branches,
                        affinity,
                        tasks: Sequence[str],
                        pools: Sequence[int],
                        alpha: float) -> Dict[str, object]:
    """The cost of a tree, block by block.

    Args:
        branches: The tree: one partition of ``tasks`` per block.
        affinity: (L, N, N) affinity, rows in the order of ``tasks``.
        tasks: The N task names.
        pools: Down-sampling steps p_l per block.
        alpha: Weight of the complexity cost (>= 0).

    Returns:
        dict with ``clustering`` (per-block C_clustering^l), ``complexity``
        (per-block C_complexity^l, not yet multiplied by alpha), ``block``
        (per-block C_clustering^l + alpha * C_complexity^l),
        ``clustering_total``, ``complexity_total`` and ``total`` (the tree's
        cost C).
    """
    aff = check_affinity(affinity, tasks)
    num_blocks = aff.shape[0]
    pools = check_pools(pools, num_blocks)
    alpha = check_alpha(alpha)
    branches = validate_branches(branches, tasks, num_blocks)
    pos = {t: i for i, t in enumerate(tasks)}
    dist = 1.0 - aff
    clustering, complexity, block = [], [], []
    for b, partition in enumerate(branches):
        c = float(np.mean([
            group_distance(dist[b], [pos[t] for t in group])
            for group in partition]))
        x = float((len(partition) - 1) * 2 ** pools[b])
        clustering.append(c)
        complexity.append(x)
        block.append(c + alpha * x)
    return dict(
        clustering=clustering,
        complexity=complexity,
        block=block,
        clustering_total=float(sum(clustering)),
        complexity_total=float(sum(complexity)),
        total=float(sum(block)))


def tree_cost(branches: Branches,
              affinity,
              tasks: Sequence[str],
              pools: Sequence[int],
              alpha: float) -> float:
    """The cost C of a tree (see :func:`tree_cost_breakdown`)."""
    return tree_cost_breakdown(branches, affinity, tasks, pools,
                               alpha)['total']


def all_shared_alpha(affinity, tasks: Sequence[str]) -> float:
    """An alpha from which on the all-shared tree is optimal.

    Every other tree has a block with >= 2 groups, i.e. a complexity cost of at
    least 1 (``2 ** p >= 1``), and a clustering cost >= 0 (off-diagonal
    affinities <= 1); the all-shared tree costs its clustering cost alone. So
    any alpha >= that clustering cost makes the all-shared tree a minimum.

    Returns:
        The total clustering cost of the all-shared tree.
    """
    aff = check_affinity(affinity, tasks)
    dist = 1.0 - aff
    idx = list(range(len(tasks)))
    return float(sum(group_distance(dist[b], idx)
                     for b in range(aff.shape[0])))
