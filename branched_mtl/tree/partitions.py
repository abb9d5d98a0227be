"""Set partitions of the tasks, as the exact tree search and TAG's
disjoint selection enumerate them.

A group is a bitmask over the task indices (bit i: task i) and a partition a
tuple of groups ordered by their lowest task, so equal partitions compare
equal.
"""
from typing import List, Sequence, Tuple

__all__ = ['Partition', 'lowbit', 'canon', 'members', 'set_partitions',
           'splits_of', 'chain_to_branches']

Partition = Tuple[int, ...]


def lowbit(mask: int) -> int:
    """The lowest set bit of ``mask`` (its lowest task, as a mask)."""
    return mask & -mask


def canon(groups) -> Partition:
    """``groups`` as a partition: ordered by their lowest task."""
    return tuple(sorted(groups, key=lowbit))


def members(mask: int) -> List[int]:
    """The task indices of a group."""
    out, i = [], 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out


def set_partitions(n: int) -> List[Partition]:
    """All set partitions of range(n), groups ordered by their lowest task."""
    out: List[Partition] = []

    def rec(i: int, groups: List[int]):
        if i == n:
            out.append(tuple(groups))
            return
        bit = 1 << i
        for k in range(len(groups)):
            groups[k] |= bit
            rec(i + 1, groups)
            groups[k] ^= bit
        groups.append(bit)
        rec(i + 1, groups)
        groups.pop()

    rec(0, [])
    return out


def splits_of(parts: List[Partition]) -> List[List[int]]:
    """For each partition, the partitions made by splitting one group in two.

    Every refinement of a partition is reached through a chain of such
    splits, so the best over all refinements can be collected through them.
    """
    index = {p: i for i, p in enumerate(parts)}
    out = []
    for p in parts:
        nxt = []
        for k, g in enumerate(p):
            low = lowbit(g)
            rest = g ^ low
            if not rest:
                continue
            others = p[:k] + p[k + 1:]
            # g1 keeps g's lowest task, so each split is listed once.
            sub = (rest - 1) & rest
            while True:
                g1 = low | sub
                nxt.append(index[canon(others + (g1, g ^ g1))])
                if sub == 0:
                    break
                sub = (sub - 1) & rest
        out.append(nxt)
    return out


def chain_to_branches(parts: Sequence[Partition],
                      tasks: Sequence[str]) -> List[List[List[str]]]:
    """A chain of partitions (one per block) as a tree of task names,
    groups ordered by their lowest task."""
    return [[[tasks[i] for i in members(g)] for g in canon(p)]
            for p in parts]
