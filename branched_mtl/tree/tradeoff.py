"""The trade-off curve: the distinct trees the search chooses over alpha.

Alpha weighs a tree's size against its clustering cost; sweeping it from 0
(every block split as the affinity says) to :func:`all_shared_alpha` (the
all-shared tree) lists every tree the search can choose without a budget.
"""
from typing import List, Optional, Sequence

import numpy as np

from .branches import count_tree_params
from .cost import all_shared_alpha, check_affinity, tree_cost_breakdown
from .search import search_tree

__all__ = ['alpha_sweep']


def alpha_sweep(affinity,
                tasks: Sequence[str],
                pools: Sequence[int],
                alphas: Optional[Sequence[float]] = None,
                block_params: Optional[Sequence[int]] = None,
                head_params: int = 0,
                method: str = 'auto',
                top_n: int = 3,
                num: int = 25) -> List[dict]:
    """The distinct trees chosen over a range of alpha: the trade-off curve.

    Args:
        alphas: The values to try. By default 0 and ``num`` log-spaced values
            up to :func:`all_shared_alpha`, from which on the all-shared tree
            is optimal.
        Others: as in :func:`search_tree`.

    Returns:
        One dict per distinct tree, from the largest to the smallest alpha
        range: ``alpha_min``, ``alpha_max`` (the alphas tried that chose it),
        ``branches``, ``params`` (None without ``block_params``),
        ``clustering`` (total clustering cost), ``complexity``
        (total complexity cost), ``num_groups`` (groups summed over blocks).
    """
    tasks = list(tasks)
    aff = check_affinity(affinity, tasks)
    if alphas is None:
        top = all_shared_alpha(aff, tasks)
        alphas = [0.0]
        if top > 0:
            alphas += list(np.geomspace(top * 1e-4, top, num))
    rows: List[dict] = []
    for a in sorted(float(x) for x in alphas):
        branches, _ = search_tree(
            aff, tasks, pools, alpha=a, block_params=block_params,
            head_params=head_params, method=method, top_n=top_n)
        if rows and rows[-1]['branches'] == branches:
            rows[-1]['alpha_max'] = a
            continue
        bd = tree_cost_breakdown(branches, aff, tasks, pools, a)
        rows.append(dict(
            alpha_min=a,
            alpha_max=a,
            branches=branches,
            params=(count_tree_params(branches, block_params, head_params)
                    if block_params is not None else None),
            clustering=bd['clustering_total'],
            complexity=bd['complexity_total'],
            num_groups=sum(len(p) for p in branches)))
    return rows
