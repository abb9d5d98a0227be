"""branched_mtl.tree.partitions: the set partitions of the tasks and the
splits of one group that lead from a partition to its refinements."""
from branched_mtl.tree.partitions import (canon, lowbit, members,
                                          set_partitions, splits_of)


def test_set_partitions_are_all_distinct_and_cover_the_tasks():
    for n, bell in zip(range(1, 7), (1, 2, 5, 15, 52, 203)):
        parts = set_partitions(n)
        assert len(parts) == bell and len(set(parts)) == bell
        for p in parts:
            assert p == canon(p)
            assert sorted(i for g in p for i in members(g)) == list(range(n))


def test_splits_of_split_exactly_one_group_in_two():
    parts = set_partitions(4)
    for p, nxt in zip(parts, splits_of(parts)):
        # one group of size s splits in 2^(s-1) - 1 ways
        assert len(nxt) == sum(2 ** (len(members(g)) - 1) - 1 for g in p)
        for i in nxt:
            q = parts[i]
            assert len(q) == len(p) + 1
            # a refinement: every new group lies inside an old one
            assert all(any(g & h == g for h in p) for g in q)
    assert lowbit(0b10100) == 0b100
