import numpy as np
import pytest

from branched_mtl.tree import (all_shared, alpha_sweep, count_tree_params,
                               fully_separate, tree_cost_breakdown)


def test_alpha_sweep_is_a_tradeoff_curve():
    rng = np.random.default_rng(3)
    tasks = list('abcde')
    # Per block, the correlations of five random task features mapped to
    # [0, 1]: symmetric with a unit diagonal, like a measured affinity.
    aff = np.stack([(np.corrcoef(rng.random((5, 8))) + 1) / 2
                    for _ in range(3)])
    pools = [2, 1, 0]
    rows = alpha_sweep(aff, tasks, pools, block_params=[1, 2, 4],
                       method='exact')
    assert rows[0]['branches'] == fully_separate(tasks, 3)
    assert rows[0]['clustering'] == 0.0
    assert rows[-1]['branches'] == all_shared(tasks, 3)
    assert len(rows) >= 3
    # The optimum's complexity can only fall as alpha grows, and its
    # clustering cost only rise.
    for r0, r1 in zip(rows, rows[1:]):
        assert r0['alpha_max'] < r1['alpha_min']
        assert r1['complexity'] <= r0['complexity'] + 1e-9
        assert r1['clustering'] >= r0['clustering'] - 1e-9
        assert r0['branches'] != r1['branches']
    for r in rows:
        bd = tree_cost_breakdown(r['branches'], aff, tasks, pools, 0.0)
        assert r['clustering'] == pytest.approx(bd['clustering_total'])
        assert r['params'] == count_tree_params(r['branches'], [1, 2, 4])
