"""TAG's own selection of task groups (Fifty et al., NeurIPS 2021): the
networks it trains, chosen on its directional lookahead Z at one split, and
the tree of separate networks that selection gives.

Z comes from :mod:`branched_mtl.affinity.tag` (``tag_lookahead``); this
module only decides. No torch import here: arrays only.
"""
import itertools
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .partitions import set_partitions

__all__ = ['tag_group_scores', 'select_tag_groups', 'tag_groups_to_branches']

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
