"""Paired statistics over seeds: what the comparison's claims rest on.

A claim such as "the tournament's tree beats the random trees of its size"
is about paired differences: the same seed (data order, initialisation of
the shared parts, single-task references) for both models. These functions
turn per-seed values into a mean with a 95 % bootstrap confidence interval
(``scipy.stats.bootstrap``), paired differences, and win rates.
"""
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f'{what}: expected a flat list of numbers')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{what}: values must be finite, got '
                         f'{array.tolist()}')
    return array


def mean_ci(values: Sequence[float],
            confidence: float = CONFIDENCE,
            n_resamples: int = RESAMPLES,
            seed: int = 0,
            what: str = 'values') -> Dict[str, Optional[float]]:
    """Mean and bootstrap confidence interval of one list of values.

    The interval is scipy's bias-corrected and accelerated bootstrap of the
    mean (percentile where BCa is undefined, e.g. all values equal), with a
    fixed generator so that reports are reproducible.

    Args:
        values: One value per seed.
        confidence: Confidence level of the interval.
        n_resamples: Bootstrap resamples.
        seed: Seed of the bootstrap's generator.
        what: Name used in error messages.

    Returns:
        ``dict(mean, low, high, n, std)``; ``low``/``high`` are None for
        fewer than two values (no interval exists).
    """
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    array = _finite(values, what)
    n = int(array.size)
    if n == 0:
        return dict(mean=None, low=None, high=None, n=0, std=None)
    out = dict(mean=float(array.mean()), low=None, high=None, n=n,
               std=float(array.std(ddof=1)) if n > 1 else 0.0)
    if n < 2:
        return out
    if np.all(array == array[0]):
        out.update(low=float(array[0]), high=float(array[0]))
        return out
    res = stats.bootstrap((array, ), np.mean, confidence_level=confidence,
                          n_resamples=n_resamples, method='BCa',
                          random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        res = stats.bootstrap((array, ), np.mean,
                              confidence_level=confidence,
                              n_resamples=n_resamples, method='percentile',
                              random_state=np.random.default_rng(seed))
        low, high = res.confidence_interval
    out.update(low=float(low), high=float(high))
    return out


def paired_difference(values: Mapping[int, float],
                      reference: Mapping[int, float],
                      **kwargs) -> Dict[str, object]:
    """``values - reference`` over the seeds both have, with its interval.

    Args:
        values: ``{seed: value}`` of the method.
        reference: ``{seed: value}`` of what it is compared with.
        **kwargs: Passed to :func:`mean_ci`.

    Returns:
        :func:`mean_ci`'s dict plus ``seeds`` (the paired seeds, sorted),
        ``per_seed`` (each difference) and ``beyond_interval``: +1 when the
        whole interval is above 0, -1 when below, 0 otherwise.
    """
    seeds = sorted(set(values) & set(reference))
    diffs = [float(values[s]) - float(reference[s]) for s in seeds]
    out = dict(mean_ci(diffs, what='paired differences', **kwargs))
    out.update(seeds=seeds, per_seed=diffs,
               beyond_interval=verdict(out))
    return out


def verdict(ci: Mapping[str, Optional[float]]) -> int:
    """+1 if the interval lies above 0, -1 if below, 0 if it holds 0 or
    does not exist."""
    low, high = ci.get('low'), ci.get('high')
    if low is None or high is None:
        return 0
    if low > 0:
        return 1
    if high < 0:
        return -1
    return 0


def win_rate(values: Mapping[int, float],
             others: Mapping[int, Sequence[float]]) -> Optional[float]:
    """How often the method beats a competitor of the same seed.

    Every (seed, competitor) pair counts once; a tie counts one half.

    Args:
        values: ``{seed: value}`` of the method (higher is better).
        others: ``{seed: [value of each competitor]}``, e.g. random trees.

    Returns:
        The fraction of pairs won, or None when no seed has both.
    """
    wins, pairs = 0.0, 0
    for seed, value in values.items():
        for other in others.get(seed, ()):
            pairs += 1
            wins += 1.0 if value > other else 0.5 if value == other else 0.0
    return wins / pairs if pairs else None


def median_per_seed(others: Mapping[int, Sequence[float]]
                    ) -> Dict[int, float]:
    """``{seed: median of that seed's values}``, seeds with values only."""
    return {s: float(np.median(v)) for s, v in others.items() if len(v)}
