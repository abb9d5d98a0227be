"""The tree: how the encoder's blocks are shared among tasks.

A tree is written as ``branches``: one entry per sharable block of the encoder,
each a partition of the task names into groups. Deeper partitions refine
shallower ones, so a branch never re-merges.
"""
from typing import Dict, List, Optional, Sequence, Tuple

Group = List[str]
Partition = List[Group]
Branches = List[Partition]


def all_shared(tasks: Sequence[str], num_blocks: int) -> Branches:
    """The tree where every block is shared by all tasks."""
    return [[list(tasks)] for _ in range(num_blocks)]


def fully_separate(tasks: Sequence[str], num_blocks: int) -> Branches:
    """The tree of N independent networks (one group per task at every block)."""
    return [[[t] for t in tasks] for _ in range(num_blocks)]


def _fmt(tasks) -> str:
    return ', '.join(repr(t) for t in tasks)


def validate_branches(branches: Optional[Sequence],
                      tasks: Sequence[str],
                      num_blocks: int) -> Branches:
    """Check a tree and return it normalised to lists of lists of str.

    Args:
        branches: One partition of ``tasks`` per block, or None for the
            all-shared tree.
        tasks: The task names.
        num_blocks: The number of sharable blocks of the encoder.

    Returns:
        The tree as a list (blocks) of lists (groups) of lists of task names.

    Raises:
        ValueError: naming the block and the tasks at fault.
    """
    tasks = list(tasks)
    if len(tasks) == 0:
        raise ValueError('tasks is empty: a tree needs at least one task')
    if len(set(tasks)) != len(tasks):
        dup = sorted({t for t in tasks if tasks.count(t) > 1})
        raise ValueError(f'tasks lists {_fmt(dup)} more than once')
    if branches is None:
        return all_shared(tasks, num_blocks)
    if isinstance(branches, (str, bytes)) or not isinstance(
            branches, Sequence):
        raise ValueError(
            f'branches must be a list of per-block partitions, got '
            f'{type(branches).__name__}')
    if len(branches) != num_blocks:
        raise ValueError(
            f'branches has {len(branches)} entries but the encoder has '
            f'{num_blocks} sharable blocks (one partition per block)')
    known = set(tasks)
    out: Branches = []
    parent_of: Dict[str, int] = {}
    for b, partition in enumerate(branches):
        if isinstance(partition, (str, bytes)) or not isinstance(
                partition, Sequence):
            raise ValueError(
                f'block {b}: expected a list of groups, got '
                f'{type(partition).__name__}')
        seen: Dict[str, int] = {}
        groups: Partition = []
        for g, group in enumerate(partition):
            if isinstance(group, (str, bytes)) or not isinstance(
                    group, Sequence):
                raise ValueError(
                    f'block {b}, group {g}: expected a list of task names, '
                    f'got {group!r}')
            if len(group) == 0:
                raise ValueError(f'block {b}, group {g} is empty')
            for t in group:
                if not isinstance(t, str) or t not in known:
                    raise ValueError(
                        f'block {b}, group {g}: unknown task {t!r} '
                        f'(tasks are {_fmt(tasks)})')
                if t in seen:
                    raise ValueError(
                        f'block {b}: task {t!r} is in two groups '
                        f'({seen[t]} and {g})')
                seen[t] = g
            groups.append([str(t) for t in group])
        missing = [t for t in tasks if t not in seen]
        if missing:
            raise ValueError(
                f'block {b}: task(s) {_fmt(missing)} in no group')
        if b > 0:
            # A group must lie inside one group of the block above.
            for g, group in enumerate(groups):
                parents = sorted({parent_of[t] for t in group})
                if len(parents) > 1:
                    raise ValueError(
                        f'block {b}, group {g}: tasks {_fmt(group)} were in '
                        f'different groups at block {b - 1} and cannot '
                        f're-merge (a branch never re-merges)')
        parent_of = seen
        out.append(groups)
    return out


def tree_nodes(branches: Branches) -> List[List[Tuple[int, Group]]]:
    """The nodes of a validated tree with their parents.

    Returns:
        Per block, a list of ``(parent_index, group)``: the index of the group
        at the block above that feeds this group (-1 for block 0).
    """
    nodes = []
    prev: Partition = []
    for b, partition in enumerate(branches):
        level = []
        for group in partition:
            parent = -1
            if b > 0:
                parent = next(i for i, pg in enumerate(prev)
                              if group[0] in pg)
            level.append((parent, list(group)))
        nodes.append(level)
        prev = partition
    return nodes


def count_tree_params(branches: Branches,
                      block_params: Sequence[int],
                      head_params: int = 0) -> int:
    """Parameter count of a tree without building it.

    Args:
        branches: A (validated) tree.
        block_params: Parameters of one copy of each block.
        head_params: Parameters of all task heads together.

    Returns:
        sum over blocks of (number of groups x parameters of one copy),
        plus ``head_params``.
    """
    if len(branches) != len(block_params):
        raise ValueError(
            f'branches has {len(branches)} blocks but block_params has '
            f'{len(block_params)}')
    return int(sum(len(p) * int(n) for p, n in zip(branches, block_params))
               + head_params)


def format_tree(branches: Branches,
                block_names: Optional[Sequence[str]] = None) -> str:
    """One line per block with its groups, e.g. ``layer3: [a b] [c]``."""
    lines = []
    for b, partition in enumerate(branches):
        name = block_names[b] if block_names else f'block{b}'
        groups = ' '.join('[' + ' '.join(g) + ']' for g in partition)
        lines.append(f'{name}: {groups}')
    return '\n'.join(lines)
