"""Search for the tree of least cost (step 4 of the method).

Two searches over the same cost (:mod:`branched_mtl.tree.cost`):

* ``beam``: the paper's procedure. Top-down from the deepest block: at each
  block the groups of the block below are clustered by spectral clustering
  into m = 1 .. b groups, and the ``top_n`` partial trees of least cost summed
  over the blocks decided so far are kept (with a budget: the ``top_n``
  partitions, each with its Pareto front of partial trees).
* ``exact``: dynamic programming over the set partitions of the tasks, block
  by block, each block's partition a coarsening of the one below. It returns
  a tree of minimal cost, but the number of partitions grows as the Bell
  numbers, so it is only for a handful of tasks.

With a parameter ``budget`` (the BMVC version of the paper) both searches only
consider trees whose parameter count fits the budget.

Internally a group is a bitmask over the task indices and a partition a tuple
of groups ordered by their lowest task, so equal partitions compare equal.
"""
import heapq
import math
import warnings
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .branches import Branches, all_shared, count_tree_params
from .cost import (check_affinity, check_alpha, check_pools, group_distance,
                   tree_cost)
from .partitions import (Partition, canon, chain_to_branches, members,
                         set_partitions, splits_of)

__all__ = ['search_tree', 'group_affinity', 'EXACT_MAX_TASKS',
           'EXACT_MAX_TASKS_BUDGET']

# 'auto' uses the exact search up to this many tasks. Measured on the 2-core
# CPU (docs/benchmarks.md, "Tree search"), L = 13 blocks: N = 8 takes ~0.3 s, N = 9
# 1-3 s; with a budget (a Pareto front per partition) N = 7 ~0.2 s, N = 8
# 2-5 s, N = 9 15-30 s.
EXACT_MAX_TASKS = 8
EXACT_MAX_TASKS_BUDGET = 7
# Beyond this, method='exact' is refused: Bell(11) = 678570 partitions.
EXACT_HARD_LIMIT = 10

# Costs are sums of floats accumulated in different orders: treat nearer
# values as a tie, broken in favour of the smaller network.
_EPS = 1e-9
# k-means restarts per spectral clustering. sklearn's default is 10; on
# CelebA-sized synthetic cases 3 found the cheaper tree in 4 of 6 (the beam
# is greedy) with about half the CPU time (docs/benchmarks.md, "Tree search").
_KMEANS_N_INIT = 3
# Spectral clustering needs a connected graph with non-negative weights.
_MIN_GROUP_AFFINITY = 1e-6

def group_affinity(affinity_l: np.ndarray,
                   groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Affinity among groups of tasks, for spectral clustering.

    The affinity of two groups is the smallest affinity between a task of one
    and a task of the other (complete linkage): merging them makes a group
    whose largest distance is at least ``1 - that``, which is what the
    clustering cost charges. Values are clipped to ``>= 1e-6`` since spectral
    clustering needs non-negative weights and a connected graph; the diagonal
    is 1 (scikit-learn's Laplacian ignores it).

    Args:
        affinity_l: (N, N) task affinity at one block.
        groups: Task indices of each group.

    Returns:
        (len(groups), len(groups)) symmetric array.
    """
    b = len(groups)
    out = np.ones((b, b))
    for a in range(b):
        for c in range(a + 1, b):
            v = affinity_l[np.ix_(groups[a], groups[c])].min()
            out[a, c] = out[c, a] = v
    return np.clip(out, _MIN_GROUP_AFFINITY, None)


class _Problem:
    """The cost pieces of one search, with caches."""

    def __init__(self, aff: np.ndarray, pools: List[int], alpha: float,
                 weights: List[int], enc_budget: Optional[int]):
        self.aff = aff
        self.dist = 1.0 - aff
        self.num_blocks, self.num_tasks = aff.shape[0], aff.shape[1]
        self.pools = pools
        self.alpha = alpha
        # Parameters of one copy of each block (1 each without block_params:
        # then the size is the number of block copies, the tie-breaker).
        self.weights = weights
        self.enc_budget = enc_budget
        # Encoder parameters of the all-shared blocks above block l: the least
        # any completion of a partial tree from block l down still costs.
        self.above = [sum(weights[:l]) for l in range(self.num_blocks)]
        self._group_cost: Dict[Tuple[int, int], float] = {}
        self._embedding: Dict[Tuple[int, Partition], np.ndarray] = {}
        self._cands: Dict[Tuple[int, Partition, int], Partition] = {}

    def complexity(self, l: int, m: int) -> float:
        return self.alpha * (m - 1) * 2 ** self.pools[l]

    def group_cost(self, l: int, mask: int) -> float:
        key = (l, mask)
        v = self._group_cost.get(key)
        if v is None:
            v = group_distance(self.dist[l], members(mask))
            self._group_cost[key] = v
        return v

    def block_cost(self, l: int, part: Partition) -> float:
        clust = sum(self.group_cost(l, g) for g in part) / len(part)
        return clust + self.complexity(l, len(part))

    def fits(self, l: int, size_from_l: int) -> bool:
        """Whether a partial tree (blocks l..L-1) can still fit the budget."""
        return (self.enc_budget is None
                or size_from_l + self.above[l] <= self.enc_budget)

    # -- beam candidates ---------------------------------------------------
    def candidates(self, l: int, groups: Partition,
                   m: int) -> List[Partition]:
        """The groups merged into m groups by spectral clustering (block l)."""
        b = len(groups)
        if m == b:
            return [groups]
        if m == 1:
            full = 0
            for g in groups:
                full |= g
            return [(full, )]
        key = (l, groups, m)
        parts = self._cands.get(key)
        if parts is None:
            parts = []
            for labels in self._spectral_labels(l, groups, m):
                merged: Dict[int, int] = {}
                for g, lab in zip(groups, labels):
                    merged[int(lab)] = merged.get(int(lab), 0) | g
                p = canon(merged.values())
                if p not in parts:
                    parts.append(p)
            self._cands[key] = parts
        return parts

    def _spectral_labels(self, l: int, groups: Partition,
                         m: int) -> List[np.ndarray]:
        # The steps of sklearn's SpectralClustering(affinity='precomputed',
        # n_clusters=m): embed with the m first eigenvectors of the normalised
        # Laplacian, then k-means. The eigenvectors do not depend on m, so
        # they are computed once per set of groups instead of once per m.
        from sklearn.cluster import k_means
        emb = self._embedding.get((l, groups))
        if emb is None:
            emb = self._embed(l, groups)
            self._embedding[(l, groups)] = emb
        _, labels, _ = k_means(
            emb[:, :m], m, random_state=0, n_init=_KMEANS_N_INIT)
        if len(set(labels.tolist())) != m:
            # k-means may leave a cluster empty on a degenerate embedding;
            # sklearn's own estimator then decides.
            labels = self._sklearn_labels(l, groups, m)
        return [labels]

    def _affinity_of(self, l: int, groups: Partition) -> np.ndarray:
        return group_affinity(self.aff[l], [members(g) for g in groups])

    def _embed(self, l: int, groups: Partition) -> np.ndarray:
        from scipy.linalg import eigh
        from scipy.sparse.csgraph import laplacian
        lap, dd = laplacian(
            self._affinity_of(l, groups), normed=True, return_diag=True)
        _, vecs = eigh(lap)
        # Unlike sklearn, no sign flip: k-means does not see the signs.
        return vecs / dd[:, None]

    def _sklearn_labels(self, l: int, groups: Partition,
                        m: int) -> np.ndarray:
        from sklearn.cluster import SpectralClustering
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return SpectralClustering(
                n_clusters=m, affinity='precomputed',
                random_state=0).fit(self._affinity_of(l, groups)).labels_


# -- exact ------------------------------------------------------------------
def _better(a, b) -> bool:
    """Whether (cost, size, ...) a beats b: lower cost, then smaller size."""
    return a[0] < b[0] - _EPS or (a[0] <= b[0] + _EPS and a[1] < b[1])


def _pareto(points: List[tuple]) -> List[tuple]:
    """The (size, cost, chain) points no other point beats in both.

    Returns:
        Them sorted by size with strictly falling cost: the last is the
        cheapest, and of (nearly) equal costs only the smallest is kept.
    """
    points.sort(key=lambda p: (p[0], p[1]))
    out = []
    best = math.inf
    for p in points:
        if p[1] < best - _EPS:
            out.append(p)
            best = p[1]
    return out


def _keep(points: List[tuple], budget: bool) -> List[tuple]:
    """The partial trees worth keeping among some with the same partition.

    Partial trees whose shallowest decided block has the same partition have
    the same possible completions. Without a budget only the cheapest can win.
    With one, a costlier but smaller one may be the only one whose better
    completions fit, so none that is not beaten in both cost and size goes.

    Args:
        points: (size, cost, chain) partial trees with the same partition.
        budget: Whether a parameter budget applies.

    Returns:
        The Pareto front of ``points`` (see :func:`_pareto`), or without a
        budget its cheapest point alone; the cheapest is last either way.
    """
    front = _pareto(points)
    return front if budget else front[-1:]


def _exact(prob: _Problem) -> Tuple[list, float]:
    n, num_blocks = prob.num_tasks, prob.num_blocks
    parts = set_partitions(n)
    covers = splits_of(parts)
    # Finest first, so the partitions a split leads to are done already.
    order = sorted(range(len(parts)), key=lambda i: -len(parts[i]))
    ngroups = [len(p) for p in parts]
    cost = [[prob.block_cost(l, p) for p in parts] for l in range(num_blocks)]
    root = next(i for i, p in enumerate(parts) if len(p) == 1)

    if prob.enc_budget is None:
        # best[i]: least (cost, size, chain) over the trees of blocks l..L-1
        # whose block-l partition refines partition i.
        best = None
        for l in reversed(range(num_blocks)):
            w = prob.weights[l]
            if best is None:
                val = [(cost[l][i], ngroups[i] * w, (i, None))
                       for i in range(len(parts))]
            else:
                val = [(cost[l][i] + best[i][0], ngroups[i] * w + best[i][1],
                        (i, best[i][2])) for i in range(len(parts))]
            best = [None] * len(parts)
            for i in order:
                b = val[i]
                for j in covers[i]:
                    if _better(best[j], b):
                        b = best[j]
                best[i] = b
        c, _, chain = best[root]
        return _unroll(chain, parts), c

    # With a budget, keep per partition the Pareto front of (size, cost).
    front = None
    for l in reversed(range(num_blocks)):
        w = prob.weights[l]
        val = []
        for i in range(len(parts)):
            s, c = ngroups[i] * w, cost[l][i]
            if front is None:
                pts = [(s, c, (i, None))]
            else:
                pts = [(s + fs, c + fc, (i, ch)) for fs, fc, ch in front[i]]
            val.append([p for p in pts if prob.fits(l, p[0])])
        front = [None] * len(parts)
        for i in order:
            pts = list(val[i])
            for j in covers[i]:
                pts.extend(front[j])
            front[i] = _keep(pts, budget=True)
    _, c, chain = front[root][-1]
    return _unroll(chain, parts), c


def _unroll(chain, parts: Optional[List[Partition]] = None) -> list:
    out = []
    while chain is not None:
        head, chain = chain
        out.append(parts[head] if parts is not None else head)
    return out


# -- beam -------------------------------------------------------------------
def _beam(prob: _Problem, top_n: int) -> Tuple[list, float]:
    from threadpoolctl import threadpool_limits

    # k-means on <= N points gains nothing from threads, and OpenMP workers
    # spin-waiting on a busy machine made the search 4x slower.
    with threadpool_limits(limits=1, user_api='openmp'):
        return _beam_search(prob, top_n)


def _beam_search(prob: _Problem, top_n: int) -> Tuple[list, float]:
    n, num_blocks = prob.num_tasks, prob.num_blocks
    budget = prob.enc_budget is not None
    # (partition at the shallowest decided block, its (size, cost, chain)
    # partial trees as _keep leaves them); the deepest block starts from the
    # single tasks.
    beam: List[Tuple[Partition, List[tuple]]] = [
        (tuple(1 << i for i in range(n)), [(0, 0.0, None)])]
    for l in reversed(range(num_blocks)):
        w = prob.weights[l]
        found: Dict[Partition, List[tuple]] = {}

        def nth_best() -> float:
            if len(found) < top_n:
                return math.inf
            return heapq.nsmallest(
                top_n, (pts[-1][1] for pts in found.values()))[-1]

        # Cheapest first, so that the cost bound below prunes early.
        entries = sorted(((pt, groups) for groups, pts in beam for pt in pts),
                         key=lambda e: (e[0][1], e[0][0]))
        for (s0, c0, chain), groups in entries:
            for m in range(1, len(groups) + 1):
                # Both bounds grow with m: once past, so is every larger m.
                if not prob.fits(l, s0 + m * w):
                    break
                # Past it, a partial tree cannot rank among the top_n
                # partitions, but with a budget it may still be the smaller
                # point of one that does (see _keep): no cost bound then.
                if not budget and c0 + prob.complexity(l, m) > \
                        nth_best() + _EPS:
                    break
                for part in prob.candidates(l, groups, m):
                    # Count the groups formed, in case a label went unused.
                    pt = (s0 + len(part) * w, c0 + prob.block_cost(l, part),
                          (part, chain))
                    found[part] = _keep(found.get(part, []) + [pt], budget)
        if not found:
            # Unreachable: the all-shared tree always fits (checked before).
            raise RuntimeError('beam search lost every partial tree')
        # The top_n partitions by their cheapest partial tree, each with all
        # the partial trees it keeps.
        beam = sorted(found.items(),
                      key=lambda e: (e[1][-1][1], e[1][-1][0]))[:top_n]
    _, c, chain = beam[0][1][-1]
    return _unroll(chain), c


# -- public -----------------------------------------------------------------
def _check_int(name: str, v, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral) or v < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {v!r}')
    return int(v)


def search_tree(affinity,
                tasks: Sequence[str],
                pools: Sequence[int],
                alpha: float = 0.0,
                budget: Optional[int] = None,
                block_params: Optional[Sequence[int]] = None,
                head_params: int = 0,
                method: str = 'auto',
                top_n: int = 3,
                budget_unit: str = 'parameters') -> Tuple[Branches, float]:
    """Find the tree of least cost.

    Args:
        affinity: (L, N, N) affinity (array or nested lists), rows in the
            order of ``tasks``.
        tasks: The N task names.
        pools: Down-sampling steps p_l from block l's input to the encoder
            output, block l's own included (one per block).
        alpha: Weight of the complexity cost, >= 0.
        budget: If given, only trees with at most this many parameters
            (``count_tree_params``) are considered.
        block_params: Parameters of one copy of each block; needed with a
            budget. Without a budget it only breaks ties (smaller wins).
        head_params: Parameters of all task heads together.
        method: ``'exact'``, ``'beam'`` or ``'auto'`` (exact for at most
            ``EXACT_MAX_TASKS`` tasks, ``EXACT_MAX_TASKS_BUDGET`` with a
            budget, else beam).
        top_n: Partial trees the beam search keeps per block.
        budget_unit: What ``budget``, ``block_params`` and ``head_params``
            count, for messages: ``'parameters'``, or ``'FLOPs'`` for a
            FLOPs budget (then they are FLOPs per image of one copy of each
            block and of the heads: the search is the same sum).

    Returns:
        ``(branches, cost)``: the tree (one partition per block, groups in task
        order) and its cost C = sum_l C_clustering^l + alpha * C_complexity^l.

    Raises:
        ValueError: on a bad affinity, pools, alpha or method, or a budget
            that no tree fits.
    """
    tasks = list(tasks)
    aff = check_affinity(affinity, tasks)
    num_blocks, n = aff.shape[0], len(tasks)
    pools = check_pools(pools, num_blocks)
    alpha = check_alpha(alpha)
    if method not in ('auto', 'exact', 'beam'):
        raise ValueError(
            f"method must be 'auto', 'exact' or 'beam', got {method!r}")
    top_n = _check_int('top_n', top_n, 1)
    head_params = _check_int('head_params', head_params)
    if block_params is not None:
        block_params = list(block_params)
        if len(block_params) != num_blocks:
            raise ValueError(
                f'block_params has {len(block_params)} entries but the '
                f'affinity has {num_blocks} blocks')
        block_params = [
            _check_int(f'block_params[{b}]', v)
            for b, v in enumerate(block_params)]
    enc_budget = None
    if budget is not None:
        budget = _check_int('budget', budget)
        if block_params is None:
            raise ValueError(
                'a budget needs block_params (the parameters of one copy of '
                'each block) to count the parameters of a tree')
        floor = count_tree_params(all_shared(tasks, num_blocks),
                                  block_params, head_params)
        if budget < floor:
            raise ValueError(
                f'no tree fits the budget of {budget:,} {budget_unit}: the '
                f'smallest tree, all blocks shared, has {floor:,} '
                f'({floor - head_params:,} in the encoder + {head_params:,} '
                f'in the heads)')
        enc_budget = budget - head_params
    weights = block_params if block_params is not None else [1] * num_blocks
    prob = _Problem(aff, pools, alpha, weights, enc_budget)
    if method == 'auto':
        limit = EXACT_MAX_TASKS if budget is None else EXACT_MAX_TASKS_BUDGET
        method = 'exact' if n <= limit else 'beam'
    if method == 'exact' and n > EXACT_HARD_LIMIT:
        raise ValueError(
            f"the exact search enumerates every partition of the tasks; "
            f"{n} tasks are too many (at most {EXACT_HARD_LIMIT}): use "
            f"method='beam'")
    if method == 'exact':
        parts, _ = _exact(prob)
    else:
        parts, _ = _beam(prob, top_n)
    branches = chain_to_branches(parts, tasks)
    return branches, tree_cost(branches, aff, tasks, pools, alpha)
