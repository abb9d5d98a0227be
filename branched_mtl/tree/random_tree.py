"""Random trees of a given shape: the paper's baseline of the same size."""
import hashlib
import itertools
import math
from typing import List, Optional, Sequence

import numpy as np

from .branches import Branches, validate_branches


# Relabelled random trees: the control for everything but which tasks go
# together. A relabelling keeps the nesting, the group sizes and so the
# parameter count and FLOPs; only the assignment of tasks to groups changes.

# orbits up to this many tasks are listed in full (7! = 5040 relabellings);
# larger ones are sampled by rejection, which stays uniform
_ENUMERATE_UP_TO = 7


def canonical_tree(branches: Branches, tasks: Sequence[str]) -> Branches:
    """The tree in a canonical order: tasks within a group and groups in the
    order of ``tasks``, so that two equal trees compare equal."""
    index = list(tasks).index
    return [sorted((sorted(g, key=index) for g in p),
                   key=lambda g: index(g[0])) for p in branches]


def _children(branches: Branches, b: int, group: Sequence[str]
              ) -> List[List[str]]:
    members = set(group)
    return [g for g in branches[b + 1] if members.issuperset(g)]


def _shape(branches: Branches, b: int, group: Sequence[str]) -> str:
    """A label-free string of the subtree below ``group`` at block ``b``."""
    if b == len(branches) - 1:
        return f'({len(group)})'
    kids = sorted(_shape(branches, b + 1, g)
                  for g in _children(branches, b, group))
    return '(' + ''.join(kids) + ')'


def _ordered_leaves(branches: Branches, b: int,
                    group: Sequence[str]) -> List[List[str]]:
    """The deepest groups below ``group``, subtrees ordered by shape."""
    if b == len(branches) - 1:
        return [list(group)]
    kids = sorted(_children(branches, b, group),
                  key=lambda g: _shape(branches, b + 1, g))
    return [leaf for g in kids for leaf in _ordered_leaves(branches, b + 1, g)]


def tree_shape(branches: Branches, tasks: Sequence[str]) -> str:
    """A string that two trees share exactly when one relabels the other."""
    branches = validate_branches(branches, tasks, len(branches))
    return ''.join(sorted(_shape(branches, 0, g) for g in branches[0]))


def count_relabellings(branches: Branches, tasks: Sequence[str]) -> int:
    """How many distinct trees relabel ``branches`` (itself included).

    The orbit of a tree under the permutations of its tasks has
    ``N! / |Aut|`` members, where ``Aut`` are the permutations that leave it
    unchanged: within a deepest group any order, and subtrees of the same
    shape under one parent may be swapped.

    Args:
        branches: A tree.
        tasks: Task names.

    Returns:
        The size of the orbit.
    """
    branches = validate_branches(branches, tasks, len(branches))

    def automorphisms(b: int, groups: Sequence[Sequence[str]]) -> int:
        count, shapes = 1, {}
        for g in groups:
            s = _shape(branches, b, g)
            shapes[s] = shapes.get(s, 0) + 1
            count *= (math.factorial(len(g)) if b == len(branches) - 1 else
                      automorphisms(b + 1, _children(branches, b, g)))
        for m in shapes.values():
            count *= math.factorial(m)
        return count

    return math.factorial(len(tasks)) // automorphisms(0, branches[0])


def _relabel(branches: Branches, mapping: dict) -> Branches:
    return [[[mapping[t] for t in g] for g in p] for p in branches]


def tree_rng(seed: int, branches: Branches,
             tasks: Sequence[str]) -> np.random.Generator:
    """The generator of a seed's random trees for a tree of this shape.

    Seeded by the seed and the shape (not the labels), so that every method
    whose tree has this shape at this seed meets the same random trees.
    """
    digest = hashlib.sha256(tree_shape(branches, tasks).encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8],
                                                            'little')])


def random_trees_like(branches: Branches,
                      tasks: Sequence[str],
                      k: int,
                      rng: Optional[np.random.Generator] = None
                      ) -> List[Branches]:
    """Up to ``k`` distinct random relabellings of a reference tree.

    Each tree is the reference with its task names permuted uniformly at
    random: same nesting, group sizes, parameters and FLOPs; only which
    tasks go together changes. None equals the reference. Fewer than ``k``
    come back only when fewer exist (:func:`count_relabellings` minus one).
    The draw depends on the reference's shape and ``rng`` only, not on its
    labels: a canonical labelling of the shape is permuted.

    Args:
        branches: The reference tree.
        tasks: Task names.
        k: How many trees to return at most (>= 0).
        rng: Random generator (default: a fresh one); use :func:`tree_rng`
            so that the methods of one seed share their random trees.

    Returns:
        The trees, canonical order (:func:`canonical_tree`), in draw order.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f'random_trees_like: k must be an integer >= 0, '
                         f'got {k!r}')
    tasks = list(tasks)
    branches = canonical_tree(
        validate_branches(branches, tasks, len(branches)), tasks)
    rng = rng if rng is not None else np.random.default_rng()
    available = count_relabellings(branches, tasks) - 1
    want = min(int(k), available)
    if want == 0:
        return []
    # the canonical representative of the shape: tasks laid out in order
    # over the deepest groups, subtrees sorted by shape
    leaves = [leaf for g in sorted(branches[0],
                                   key=lambda g: _shape(branches, 0, g))
              for leaf in _ordered_leaves(branches, 0, g)]
    to_slot = {t: i for i, t in enumerate(t for leaf in leaves for t in leaf)}
    slots = _relabel(branches, {t: to_slot[t] for t in tasks})

    def labelled(perm) -> Branches:
        return canonical_tree(
            _relabel(slots, {i: tasks[j] for i, j in enumerate(perm)}), tasks)

    ref_key = str(branches)
    if len(tasks) <= _ENUMERATE_UP_TO:
        orbit = {}
        for perm in itertools.permutations(range(len(tasks))):
            tree = labelled(perm)
            orbit.setdefault(str(tree), tree)
        keys = sorted(orbit)
        order = rng.permutation(len(keys))
        picked = [orbit[keys[i]] for i in order if keys[i] != ref_key]
        return picked[:want]
    picked, seen = [], {ref_key}
    while len(picked) < want:
        tree = labelled(rng.permutation(len(tasks)))
        key = str(tree)
        if key not in seen:
            seen.add(key)
            picked.append(tree)
    return picked
