"""Every distinct tree within a size: the candidates of an oracle.

A tree is a chain of partitions of the tasks, one per block, each a
refinement of the one before (a branch never merges again). At small scale
(four tasks, five blocks) every such tree within a budget can be trained,
which tells how far a method's choice is from the best one.
"""
from typing import List, Optional, Sequence

from .branches import Branches
from .partitions import Partition, chain_to_branches, set_partitions

__all__ = ['enumerate_trees']


def _refines(fine: Partition, coarse: Partition) -> bool:
    """Whether every group of ``fine`` lies inside a group of ``coarse``."""
    return all(any(g & c == g for c in coarse) for g in fine)


def enumerate_trees(tasks: Sequence[str],
                    block_params: Sequence[int],
                    budget: Optional[int] = None,
                    head_params: int = 0) -> List[Branches]:
    """All distinct trees of ``tasks`` over the blocks, within ``budget``.

    Args:
        tasks: The task names (their order is the order of the groups).
        block_params: Parameters of one copy of each block.
        budget: Largest parameter count of a tree (heads included); None
            for every tree.
        head_params: Parameters of all task heads together.

    Returns:
        The trees, each once (groups ordered by their first task), from the
        smallest parameter count to the largest.

    Raises:
        ValueError: no tasks, no blocks, or a budget below all-shared.
    """
    tasks = list(tasks)
    if not tasks or not len(block_params):
        raise ValueError('enumerate_trees needs tasks and blocks, got '
                         f'{len(tasks)} tasks, {len(block_params)} blocks')
    sizes = [int(p) for p in block_params]
    parts = sorted(set_partitions(len(tasks)), key=len)
    limit = float('inf') if budget is None else int(budget) - int(head_params)
    if limit < sum(sizes):
        raise ValueError(f'budget {budget} is below the all-shared tree '
                         f'({sum(sizes) + int(head_params)} parameters)')
    found = []

    def grow(chain: List[Partition], used: int) -> None:
        b = len(chain)
        if b == len(sizes):
            found.append((used, list(chain)))
            return
        for p in parts:
            if chain and not _refines(p, chain[-1]):
                continue
            # every later block has at least as many groups as this one
            if used + len(p) * sum(sizes[b:]) > limit:
                continue
            chain.append(p)
            grow(chain, used + len(p) * sizes[b])
            chain.pop()

    grow([], 0)
    found.sort(key=lambda x: x[0])
    return [chain_to_branches(chain, tasks) for _, chain in found]
