"""Representation similarity analysis (RSA) task affinity.

This is the affinity of the later (BMVC 2020) version of the paper: it only
needs the single-task models. For every task, the features of K held-out
samples at one split are flattened and compared pairwise:
``RDM[a, b] = 1 - Pearson(f_a, f_b)``; the affinity of two tasks is the
Spearman rank correlation between the strict upper triangles of their RDMs.
"""
from typing import Any, List, Optional, Sequence

import numpy as np
from scipy.stats import spearmanr

from .tournament import MIN_SAMPLES, to_float64_array

__all__ = ['representation_dissimilarity', 'rsa_affinity']

# Features are converted to float64 in column chunks of about this many
# elements, so that a large float16 (possibly memory-mapped) feature map is
# never copied to float64 all at once.
_CHUNK_ELEMS = 1 << 24
_RDM_FLAT_TOL = 1e-12


def _name(tasks: Optional[Sequence[str]], idx: int) -> str:
    if tasks is not None and idx < len(tasks):
        return f'features[{idx}] (task {tasks[idx]!r})'
    return f'features[{idx}]'


def _as_2d(x: Any, name: str) -> np.ndarray:
    """(K, ...) -> (K, D) without converting numpy inputs to float64 yet."""
    if hasattr(x, 'detach'):
        x = to_float64_array(x, name)
    elif not isinstance(x, np.ndarray):
        x = to_float64_array(x, name)
    if x.ndim < 2:
        raise ValueError(f'{name}: expected shape (K samples, ...) with at '
                         f'least one feature axis, got ndim={x.ndim} '
                         f'shape={x.shape}')
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(f'{name}: needs at least {MIN_SAMPLES} samples, '
                         f'got K={x.shape[0]} (shape {x.shape})')
    if not (np.issubdtype(x.dtype, np.floating)
            or np.issubdtype(x.dtype, np.integer)
            or np.issubdtype(x.dtype, np.bool_)):
        raise ValueError(f'{name}: unsupported dtype {x.dtype}')
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] < 2:
        raise ValueError(f'{name}: each sample needs at least 2 feature '
                         f'values for a Pearson correlation, got shape '
                         f'{x.shape}')
    return flat


def representation_dissimilarity(features: Any,
                                 name: str = 'features') -> np.ndarray:
    """Representation dissimilarity matrix of one task at one split.

    Args:
        features: (K, ...) features of K samples (numpy array or torch
            tensor); each sample is flattened.
        name: how the input is called in error messages.

    Returns:
        np.ndarray: (K, K) ``1 - Pearson`` correlation between samples.
    """
    flat = _as_2d(features, name)
    num_samples, dim = flat.shape
    step = max(1, _CHUNK_ELEMS // num_samples)

    # Pass 1: per-sample mean, range (exact constancy test) and finiteness.
    total = np.zeros(num_samples)
    lo = np.full(num_samples, np.inf)
    hi = np.full(num_samples, -np.inf)
    for start in range(0, dim, step):
        chunk = np.asarray(flat[:, start:start + step], dtype=np.float64)
        bad = ~np.isfinite(chunk)
        if bad.any():
            sample, col = (int(v) for v in np.argwhere(bad)[0])
            kind = 'NaN' if np.isnan(chunk[sample, col]) else 'infinite'
            raise ValueError(f'{name}: {kind} value in sample {sample} '
                             f'(flattened feature index {start + col})')
        total += chunk.sum(axis=1)
        lo = np.minimum(lo, chunk.min(axis=1))
        hi = np.maximum(hi, chunk.max(axis=1))
    constant = np.flatnonzero(hi == lo)
    if constant.size:
        raise ValueError(
            f'{name}: sample(s) {constant.tolist()} are constant (zero '
            'variance), so their Pearson correlation is undefined')
    mean = total / dim

    # Pass 2: Gram matrix of the centred samples.
    gram = np.zeros((num_samples, num_samples))
    for start in range(0, dim, step):
        chunk = np.asarray(flat[:, start:start + step], dtype=np.float64)
        chunk = chunk - mean[:, None]
        gram += chunk @ chunk.T
    norm = np.sqrt(np.diag(gram))
    if not np.all(norm > 0):
        # Only reachable when centring cancels a tiny spread to exactly 0.
        bad = np.flatnonzero(~(norm > 0)).tolist()
        raise ValueError(f'{name}: sample(s) {bad} have zero variance after '
                         'centring; Pearson correlation is undefined')
    corr = np.clip(gram / np.outer(norm, norm), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return 1.0 - corr


def rsa_affinity(features: Sequence[Any],
                 tasks: Optional[Sequence[str]] = None) -> np.ndarray:
    """RSA task affinity of N tasks at one split.

    Args:
        features: N arrays (numpy or torch) of shape (K, ...), the features
            of each task on the same K samples. Feature shapes may differ
            between tasks; K must not.
        tasks: optional task names, only used in error messages.

    Returns:
        np.ndarray: (N, N) symmetric matrix of Spearman correlations between
        the strict upper triangles of the tasks' RDMs (diagonal = 1).
    """
    if hasattr(features, 'detach') or isinstance(features, np.ndarray):
        # A single stacked array/tensor would silently be read as N = K
        # tasks of one-dimensional samples; insist on an explicit sequence.
        raise ValueError('features: expected a sequence (list/tuple) of N '
                         'per-task arrays of shape (K, ...), got a single '
                         f'{type(features).__name__}')
    features = list(features)
    if not features:
        raise ValueError('features: got an empty sequence of tasks')
    if tasks is not None and len(tasks) != len(features):
        raise ValueError(f'features: {len(features)} arrays but '
                         f'{len(tasks)} task names')
    num_samples = None
    triangles: List[np.ndarray] = []
    for idx, feat in enumerate(features):
        name = _name(tasks, idx)
        shape = tuple(getattr(feat, 'shape', np.shape(feat)))
        if len(shape) >= 1:
            if num_samples is None:
                num_samples = shape[0]
            elif shape[0] != num_samples:
                raise ValueError(
                    f'{name}: has K={shape[0]} samples but '
                    f'{_name(tasks, 0)} has K={num_samples}; all tasks '
                    'must be measured on the same samples')
        rdm = representation_dissimilarity(feat, name=name)
        upper = rdm[np.triu_indices(rdm.shape[0], k=1)]
        # RDM entries lie in [0, 2]; a spread at rounding level means the
        # ranks, and so the Spearman correlation, would be pure noise.
        if np.ptp(upper) <= _RDM_FLAT_TOL:
            raise ValueError(f'{name}: all RDM entries are equal (all sample '
                             'pairs equally dissimilar), so its Spearman '
                             'correlation is undefined')
        triangles.append(upper)

    num_tasks = len(triangles)
    if num_tasks == 1:
        return np.ones((1, 1))
    rho = spearmanr(np.stack(triangles, axis=1)).statistic
    if num_tasks == 2:
        # spearmanr returns a scalar, not a matrix, for two variables.
        rho = np.array([[1.0, rho], [rho, 1.0]])
    rho = np.asarray(rho, dtype=np.float64)
    rho = (rho + rho.T) / 2
    np.fill_diagonal(rho, 1.0)
    return rho
