"""Random trees of a given shape: the paper's baseline of the same size."""
from typing import List, Optional, Sequence

import numpy as np

from .branches import Branches, validate_branches


def random_tree_like(branches: Branches,
                     tasks: Sequence[str],
                     rng: Optional[np.random.Generator] = None) -> Branches:
    """A random tree with as many groups per block as ``branches``.

    Same number of groups at every block means the same parameter count for
    the encoder, so random trees are the size-matched baseline.

    Args:
        branches: The reference tree.
        tasks: Task names.
        rng: Random generator (default: a fresh one).

    Returns:
        A valid tree with ``len(branches[l])`` groups at every block ``l``.
    """
    branches = validate_branches(branches, tasks, len(branches))
    rng = rng or np.random.default_rng()
    counts = [len(p) for p in branches]
    # deepest block: a random partition of the tasks into counts[-1] groups,
    # every group non-empty
    order = list(rng.permutation(list(tasks)))
    k = counts[-1]
    cuts = sorted(rng.choice(np.arange(1, len(order)), size=k - 1,
                             replace=False)) if k > 1 else []
    groups: List[List[str]] = [
        list(g) for g in np.split(np.array(order, dtype=object), cuts)
    ]
    tree = [None] * len(branches)
    tree[-1] = groups
    # shallower blocks: merge random groups until the count matches
    for b in range(len(branches) - 2, -1, -1):
        groups = [list(g) for g in groups]
        while len(groups) > counts[b]:
            i, j = sorted(rng.choice(len(groups), size=2, replace=False))
            groups[i] = groups[i] + groups.pop(j)
        tree[b] = groups
    index = list(tasks).index
    # canonical order (tasks within a group, groups by their first task)
    canonical = [sorted((sorted(g, key=index) for g in p),
                        key=lambda g: index(g[0])) for p in tree]
    return validate_branches(canonical, tasks, len(branches))
