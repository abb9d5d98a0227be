"""TAG's lookahead affinity (Fifty et al., NeurIPS 2021) in our affinity
format, and TAG's own selection of task groups.

The measurement itself runs in a training run (:class:`branched_mtl.engine.
hooks.TagHook`): every ``interval`` steps, for each task i and split l, one
step of the run's own optimiser on the encoder's blocks ``0..l`` with task
i's gradient alone, every task's loss on the same batch before and after,
then parameters and optimiser state restored. This module holds the numpy
side: the lookahead affinity

    Z[l, i -> j] = 1 - L_j(after) / L_j(before),   averaged over the run,

its mapping into the affinity range the tree search reads (distance = 1 - A,
:mod:`branched_mtl.tree.cost`), and TAG's group selection.

Mapping. The tree cost needs a symmetric A[l] in [-1, 1]. We symmetrise
S = (Z + Z^T) / 2 (the mean transfer between the two tasks, both
directions) and divide it by the tasks' own lookahead, the diagonal
D[l, i] = Z[l, i -> i] (how much a step on i's gradient lowers i's own
loss):

    A[l, i, j] = S[l, i, j] / sqrt(D[l, i] D[l, j]),   A[l, i, i] = 1,

clipped to [-1, 1]; a pair where either task's own lookahead is not
positive gets 0 (no evidence either way).

Why this scale: Z is a relative loss change per lookahead step, and a step
on the bottom block alone changes every loss far less than a step on the
whole encoder, so raw values at shallow splits are all near 0 (distance
near 1 for every pair, which makes the clustering cost prefer splitting
there). Each task's own lookahead at the same split is the natural unit:
A says how much a step for task i helps task j compared with how much it
helps i itself, like a correlation. An earlier version divided each split
by its largest off-diagonal |S|, which stretches a split whose transfers
are all noise to the full [-1, 1] range; the diagonal is a signal of the
same split, so near-zero noisy transfers stay near zero. The sign is kept
(a negative A is negative transfer, distance > 1) and, within a split of
equal diagonals, the order of the task pairs. The raw, directional Z and
the per-split scale (the geometric mean of the positive diagonal) are kept
in the file's ``meta`` (``lookahead``, ``scale``), where TAG's selection
reads Z.

No torch import here: arrays only.
"""
import itertools
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .io import load_affinity, save_affinity

__all__ = [
    'TAG_METHOD', 'lookahead_affinity', 'save_tag_affinity',
    'tag_lookahead', 'tag_group_scores', 'select_tag_groups',
    'tag_groups_to_branches', 'load_tag_affinity'
]

TAG_METHOD = 'tag'
# TAG's score of a task alone in a group: a task is served by a network of
# its own only when no chosen group contains it (its code's constant).
SINGLETON_SCORE = -1e6
# Sets of groups TAG's exhaustive selection may evaluate: N = 9 tasks and
# k = 3 groups are 2.2e7 sets (about 10 s here).
MAX_GROUP_SETS = 3 * 10**7
# Every group of tasks is scored (2^N - 1 of them), and the disjoint search
# enumerates the set partitions (Bell(10) = 115,975).
MAX_TASKS = 16
MAX_TASKS_DISJOINT = 10

PathLike = Union[str, os.PathLike]


def lookahead_affinity(z: Any) -> Tuple[np.ndarray, np.ndarray]:
    """TAG's lookahead affinity as an affinity tensor for the tree search.

    Args:
        z: (L, N, N) mean lookahead affinity, ``z[l, i, j]`` = Z[i -> j] at
            split l (task i stepped, task j measured).

    Returns:
        ``(affinity, scale)``: the symmetric (L, N, N) affinity in [-1, 1]
        with a diagonal of 1, each pair's mean transfer over the geometric
        mean of the two tasks' own lookahead (see the module docstring),
        and the (L,) geometric mean of each split's positive diagonal (0
        where none is positive: that split's affinity is then 0, every pair
        equally unrelated).

    Raises:
        ValueError: on a wrong shape or a non-finite value.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[1] != z.shape[2] or z.shape[1] < 1:
        raise ValueError(f'lookahead affinity must be (splits, tasks, tasks),'
                         f' got shape {z.shape}')
    if not np.isfinite(z).all():
        l, i, j = (int(v) for v in np.argwhere(~np.isfinite(z))[0])
        raise ValueError(f'lookahead affinity has a non-finite value '
                         f'{z[l, i, j]} at split {l}, tasks {i} -> {j}')
    n = z.shape[1]
    sym = (z + z.transpose(0, 2, 1)) / 2
    diag = np.diagonal(z, axis1=1, axis2=2)  # (L, N): own lookahead
    own = np.where(diag > 0, diag, 0.0)
    norm = np.sqrt(own[:, :, None] * own[:, None, :])
    out = np.zeros_like(sym)
    measured = norm > 0
    out[measured] = sym[measured] / norm[measured]
    out = np.clip(out, -1.0, 1.0)
    off = ~np.eye(n, dtype=bool)
    out[:, ~off] = 1.0
    scale = np.array([
        float(np.exp(np.log(d[d > 0]).mean())) if (d > 0).any() else 0.0
        for d in diag
    ])
    return out, scale


def save_tag_affinity(path: PathLike, tasks: Sequence[str],
                      layers: Sequence[str], z: Any, counts: Any,
                      meta: Mapping[str, Any]) -> np.ndarray:
    """Write the lookahead affinity as an affinity file (method ``tag``).

    Args:
        path: The ``.json`` file.
        tasks: N task names.
        layers: L split names (the encoder's blocks; split l steps blocks
            ``0..l``).
        z: (L, N, N) mean Z[i -> j].
        counts: (L, N, N) lookahead steps each mean is over.
        meta: Provenance (interval, optimiser, cost ...); ``lookahead``,
            ``counts`` and ``scale`` are added.

    Returns:
        The (L, N, N) affinity written.
    """
    z = np.asarray(z, dtype=np.float64)
    counts = np.asarray(counts)
    missing = np.argwhere(counts == 0)
    if len(missing):
        l, i, j = (int(v) for v in missing[0])
        raise ValueError(
            f'{os.fspath(path)}: no lookahead measured task {tasks[j]!r} '
            f'after a step of task {tasks[i]!r} at split {layers[l]!r}: '
            'did the run see batches labelled for both (and is the '
            "hook's interval shorter than the run)?")
    affinity, scale = lookahead_affinity(z)
    meta = dict(meta)
    meta.update(lookahead=z.tolist(), counts=counts.astype(int).tolist(),
                scale=scale.tolist(),
                mapping='A[l] = S[l] / max_{i!=j} |S[l]|, S = (Z + Z^T) / 2,'
                ' diagonal 1; Z[l][i][j] = Z[i -> j]')
    save_affinity(path, tasks, layers, TAG_METHOD, affinity, meta)
    return affinity


def tag_lookahead(doc: Mapping[str, Any], where: str = 'affinity'
                  ) -> np.ndarray:
    """The raw, directional Z of a ``tag`` affinity file (as loaded by
    :func:`load_affinity`).

    Returns:
        (L, N, N) float array, ``[l, i, j]`` = Z[i -> j].

    Raises:
        ValueError: when the file is not a TAG lookahead affinity.
    """
    if doc.get('method') != TAG_METHOD:
        raise ValueError(
            f'{where}: TAG\'s selection needs a lookahead affinity (method '
            f'{TAG_METHOD!r}, written by the TagHook or tools/branch.py '
            f'--affinity tag), got method {doc.get("method")!r}')
    n, num_layers = len(doc['tasks']), len(doc['blocks'])
    try:
        z = np.asarray(doc['meta']['lookahead'], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{where}: meta.lookahead (the directional Z) is '
                         'missing or not numbers') from None
    if z.shape != (num_layers, n, n) or not np.isfinite(z).all():
        raise ValueError(f'{where}: meta.lookahead must be finite numbers of '
                         f'shape {(num_layers, n, n)}, got {z.shape}')
    return z


def tag_group_scores(z: np.ndarray) -> Tuple[List[int], np.ndarray]:
    """Every group of tasks and TAG's score of each task in it.

    A task t's score in group G is the mean lookahead affinity it receives
    from the other members, mean_{s in G, s != t} Z[s -> t];
    :data:`SINGLETON_SCORE` alone; -inf for a task outside G.

    Args:
        z: (N, N) Z[i -> j] at one split (TAG: the whole shared encoder).

    Returns:
        ``(groups, scores)``: the 2^N - 1 groups as bitmasks (in increasing
        order) and a (2^N - 1, N) array of scores.
    """
    n = z.shape[0]
    masks = np.arange(1, 1 << n)
    member = (masks[:, None] >> np.arange(n)[None, :]) & 1
    size = member.sum(axis=1)
    received = member @ z  # [g, t] = sum_{s in g} Z[s -> t]
    received -= member * np.diag(z)[None, :]  # without t itself
    with np.errstate(invalid='ignore', divide='ignore'):
        scores = received / (size[:, None] - 1)
    scores = np.where(size[:, None] == 1, SINGLETON_SCORE, scores)
    scores = np.where(member == 1, scores, -np.inf)
    return masks.tolist(), scores


def _num_sets(num_groups: int, k: int) -> int:
    return sum(math.comb(num_groups, m) for m in range(1, k + 1))


def select_tag_groups(z: Any,
                      tasks: Sequence[str],
                      k: int,
                      disjoint: bool = False) -> Dict[str, Any]:
    """TAG's network selection: at most ``k`` groups, each task served by
    the chosen group that gives it the highest score.

    Exhaustive over the sets of at most k groups (groups may overlap, as in
    TAG), maximising the mean over tasks of each task's best score in the
    set; sets that leave a task in no group are not candidates. Ties go to
    fewer groups, then to the first set found.

    Args:
        z: (N, N) Z[i -> j] at one split.
        tasks: N task names.
        k: The most networks (groups) to train.
        disjoint: Only sets of disjoint groups (partitions of the tasks),
            which a tree can express exactly.

    Returns:
        dict with ``groups`` (lists of task names, the chosen networks),
        ``serving`` ({task: index into groups}), ``score`` (the mean best
        score) and ``sets`` (how many sets were evaluated).

    Raises:
        ValueError: on a bad k, or when the search would evaluate more than
            :data:`MAX_GROUP_SETS` sets.
    """
    z = np.asarray(z, dtype=np.float64)
    tasks = list(tasks)
    n = len(tasks)
    if z.shape != (n, n) or not np.isfinite(z).all():
        raise ValueError(f'Z must be finite numbers of shape {(n, n)} for '
                         f'the tasks {tasks}, got shape {z.shape}')
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f'the number of groups k must be an int >= 1, got '
                         f'{k!r}')
    limit = MAX_TASKS_DISJOINT if disjoint else MAX_TASKS
    if n > limit:
        raise ValueError(
            f'TAG\'s exhaustive selection scores every group of tasks; {n} '
            f'tasks are too many (at most {limit}'
            + (' with disjoint groups' if disjoint else '') + ')')
    masks, scores = tag_group_scores(z)
    count = _num_sets(len(masks), min(k, len(masks)))
    if count > MAX_GROUP_SETS and not disjoint:
        raise ValueError(
            f'TAG\'s exhaustive selection over {n} tasks with k = {k} would '
            f'evaluate {count:,} sets of groups (at most {MAX_GROUP_SETS:,}):'
            ' use a smaller k, or disjoint groups')
    full = (1 << n) - 1
    best: Optional[Tuple[float, int, tuple]] = None
    evaluated = 0
    if disjoint:
        from branched_mtl.tree.partitions import set_partitions
        for part in set_partitions(n):
            if len(part) > k:
                continue
            evaluated += 1
            idx = [m - 1 for m in part]  # masks[g] == g + 1
            value = float(scores[idx].max(axis=0).mean())
            if best is None or value > best[0] + 1e-12 or (
                    abs(value - best[0]) <= 1e-12 and len(idx) < best[1]):
                best = (value, len(idx), tuple(idx))
    else:
        chunk = 1 << 16
        for m in range(1, min(k, len(masks)) + 1):
            combos = itertools.combinations(range(len(masks)), m)
            while True:
                flat = np.fromiter(
                    itertools.chain.from_iterable(
                        itertools.islice(combos, chunk)), dtype=np.int64)
                if flat.size == 0:
                    break
                sets = flat.reshape(-1, m)
                evaluated += len(sets)
                # per set, each task's best score among its groups
                per_task = scores[sets].max(axis=1)
                valid = np.isfinite(per_task).all(axis=1)
                if not valid.any():
                    continue
                value = np.where(valid, per_task.mean(axis=1), -np.inf)
                top = int(np.argmax(value))
                # strictly better only: fewer groups (earlier m) win ties
                if best is None or value[top] > best[0] + 1e-12:
                    best = (float(value[top]), m, tuple(sets[top].tolist()))
    if best is None:  # unreachable: the one group of all tasks covers all
        raise RuntimeError('TAG selection found no set of groups')
    chosen = [masks[g] for g in best[2]]
    assert (np.bitwise_or.reduce(chosen) if chosen else 0) == full
    groups = [[t for b, t in enumerate(tasks) if m >> b & 1] for m in chosen]
    serving = {}
    for t_idx, t in enumerate(tasks):
        col = [scores[g, t_idx] for g in best[2]]
        serving[t] = int(np.argmax(col))  # first of equal scores
    return dict(groups=groups, serving=serving, score=best[0],
                sets=evaluated)


def tag_groups_to_branches(selection: Mapping[str, Any],
                           tasks: Sequence[str],
                           num_blocks: int) -> List[List[List[str]]]:
    """The tree of TAG's selection: one network per serving group.

    Tasks served by the same chosen group form one group from the input on
    (a separate network), at every block. A tree cannot train a task in two
    networks, so where TAG's groups overlap, a task joins only the network
    that serves it (TAG trains it in every group it belongs to and uses one).

    Returns:
        ``branches``: the same partition at every block, groups in the
        order of the chosen groups, tasks in ``tasks`` order.
    """
    tasks = list(tasks)
    parts: Dict[int, List[str]] = {}
    for t in tasks:
        parts.setdefault(selection['serving'][t], []).append(t)
    partition = [parts[g] for g in sorted(parts)]
    return [[list(g) for g in partition] for _ in range(num_blocks)]


def load_tag_affinity(path: PathLike) -> Dict[str, Any]:
    """:func:`load_affinity` plus the directional ``lookahead`` Z."""
    doc = load_affinity(path)
    doc['lookahead'] = tag_lookahead(doc, os.fspath(path))
    return doc
