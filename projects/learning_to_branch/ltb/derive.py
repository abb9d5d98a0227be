"""Derive the tree from the supergraph's logits (argmax), within a budget.

A tree is held as node paths: ``paths[t][b]`` is the node of block b that
task t runs through. The argmax tree follows each task's head choice and
then each node's most likely parent upwards, so tasks that meet at a node
share everything above it (a branch never re-merges).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from branched_mtl.tree import validate_branches

Paths = List[List[int]]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def argmax_paths(parent_logits: np.ndarray,
                 head_logits: np.ndarray) -> Paths:
    """Each task's path of most likely choices.

    Args:
        parent_logits: (B-1, K, K) logits of node k of block b over the
            parents j of block b-1.
        head_logits: (T, K) logits of each task's head over the last block.

    Returns:
        T paths of B node indices.
    """
    parent = np.asarray(parent_logits)
    head = np.asarray(head_logits)
    paths = []
    for t in range(head.shape[0]):
        path = [int(np.argmax(head[t]))]
        for b in range(parent.shape[0] - 1, -1, -1):
            path.append(int(np.argmax(parent[b, path[-1]])))
        paths.append(path[::-1])
    return paths


def paths_to_branches(paths: Paths, tasks: Sequence[str]) -> list:
    """The ``branches`` format: per block, tasks grouped by their node
    (groups in the order of their first task)."""
    branches = []
    for b in range(len(paths[0])):
        groups: Dict[int, List[str]] = {}
        for t, task in enumerate(tasks):
            groups.setdefault(paths[t][b], []).append(task)
        branches.append(list(groups.values()))
    return validate_branches(branches, tasks, len(branches))


def tree_log_prob(paths: Paths, parent_logits: np.ndarray,
                  head_logits: np.ndarray) -> float:
    """log P of the tree under the logits: every task's head choice and
    every kept node's parent choice."""
    parent_lp = _log_softmax(parent_logits)
    head_lp = _log_softmax(head_logits)
    total = sum(head_lp[t, p[-1]] for t, p in enumerate(paths))
    seen = set()
    for p in paths:
        for b in range(1, len(p)):
            if (b, p[b]) not in seen:
                seen.add((b, p[b]))
                total += parent_lp[b - 1, p[b], p[b - 1]]
    return float(total)


def tree_size(paths: Paths, unit_per_block: Sequence[float],
              fixed: float = 0.0) -> float:
    """``fixed`` plus, per block, kept nodes x size of one copy."""
    return float(fixed + sum(
        len({p[b] for p in paths}) * unit_per_block[b]
        for b in range(len(unit_per_block))))


def _merge(paths: Paths, b: int, keep: int, drop: int) -> Paths:
    """The tasks at node ``drop`` of block b move to node ``keep``, taking
    its path above b (their nodes below b stay)."""
    above = next(p for p in paths if p[b] == keep)[:b + 1]
    return [list(above) + p[b + 1:] if p[b] == drop else list(p)
            for p in paths]


def derive_tree(parent_logits: np.ndarray,
                head_logits: np.ndarray,
                tasks: Sequence[str],
                unit_per_block: Sequence[float],
                fixed: float = 0.0,
                budget: Optional[float] = None) -> dict:
    """The argmax tree; over ``budget``, the merges that lose the least.

    While the tree is larger than the budget, two nodes of one block are
    merged (the tasks of one take the other's path above it), choosing the
    merge that leaves the most likely tree. The all-shared tree is reached
    at worst, so any budget at or above it is met.

    Args:
        parent_logits, head_logits: The supergraph's logits.
        tasks: Task names, in the order of ``head_logits``.
        unit_per_block: Size of one copy of each block (parameters or FLOPs).
        fixed: Size outside the encoder's blocks (heads).
        budget: Largest size allowed, or None.

    Returns:
        dict with ``branches``, ``paths``, ``size``, ``log_prob``,
        ``argmax_size`` and ``merges`` (how many merges the budget needed).

    Raises:
        ValueError: for a budget below the all-shared tree, naming both.
    """
    parent = np.asarray(parent_logits, dtype=np.float64)
    head = np.asarray(head_logits, dtype=np.float64)
    if head.shape[0] != len(tasks):
        raise ValueError(f'head logits for {head.shape[0]} tasks, but '
                         f'{len(tasks)} tasks given: {list(tasks)}')
    smallest = fixed + float(sum(unit_per_block))
    if budget is not None and budget < smallest:
        raise ValueError(
            f'budget {budget:,.0f} is below the all-shared tree '
            f'({smallest:,.0f}), the smallest tree: no tree fits')
    paths = argmax_paths(parent, head)
    argmax_size = tree_size(paths, unit_per_block, fixed)
    merges = 0
    while budget is not None and tree_size(paths, unit_per_block,
                                           fixed) > budget:
        best = None
        for b in range(len(unit_per_block)):
            nodes = sorted({p[b] for p in paths})
            for keep in nodes:
                for drop in nodes:
                    if keep == drop:
                        continue
                    cand = _merge(paths, b, keep, drop)
                    key = (tree_log_prob(cand, parent, head),
                           -tree_size(cand, unit_per_block, fixed))
                    if best is None or key > best[0]:
                        best = (key, cand)
        paths = best[1]
        merges += 1
    return dict(branches=paths_to_branches(paths, tasks), paths=paths,
                size=tree_size(paths, unit_per_block, fixed),
                log_prob=tree_log_prob(paths, parent, head),
                argmax_size=argmax_size, merges=merges)
