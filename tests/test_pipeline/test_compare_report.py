"""The comparison's paired table: a verdict needs five paired seeds."""
from branched_mtl.pipeline.compare_report import (MIN_SEEDS_FOR_VERDICT,
                                                  paired_markdown)


def _paired(n, side):
    stat = dict(mean=1.0, low=0.5, high=1.5, n=n, std=0.1,
                beyond_interval=side)
    return {'rsa': dict(delta_m=dict(mean=1.0, low=0.5, high=1.5, n=n),
                        vs_random_median=dict(stat),
                        vs_all_shared=dict(stat, beyond_interval=-side),
                        random_win_rate=0.9)}


def test_no_verdict_below_five_seeds():
    assert MIN_SEEDS_FOR_VERDICT == 5
    few = paired_markdown(_paired(2, 1))
    assert ('- RSA tree: vs the random trees of its size: no verdict '
            '(2 seed(s); a claim needs 5)') in few
    assert 'better' not in few and 'worse' not in few
    enough = paired_markdown(_paired(5, 1))
    assert 'vs the random trees of its size: better' in enough
    assert 'vs all-shared: worse' in enough
