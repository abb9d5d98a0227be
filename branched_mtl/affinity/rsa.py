"""Representation similarity analysis (RSA) task affinity.

This is the affinity of the later (BMVC 2020) version of the paper: it only
needs the single-task models. For every task, the features of K held-out
samples at one split are flattened and compared pairwise:
``RDM[a, b] = 1 - Pearson(f_a, f_b)``; the affinity of two tasks is the
Spearman rank correlation between the strict upper triangles of their RDMs.

Two implementations give the same numbers (float64 throughout; RDM entries
equal up to about 1e-12 tie, and ties get their average rank, as in scipy): numpy/scipy on the CPU, and torch on
any device, used when the features are on a GPU already or when a
``device`` is asked for. Torch is imported only on that path.
"""
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import spearmanr

from .tournament import MIN_SAMPLES, to_float64_array

__all__ = [
    'representation_dissimilarity', 'rsa_affinity', 'rdm_upper_triangle',
    'spearman_matrix', 'average_ranks'
]

# Features are converted to float64 in column chunks of about this many
# elements, so that a large float16 (possibly memory-mapped) feature map is
# never copied to float64 all at once.
_CHUNK_ELEMS = 1 << 24
_RDM_FLAT_TOL = 1e-12
# RDM entries are snapped to a grid of 2**-40 (about 1e-12; a power of two,
# so the scaling is exact) before ranking: sample pairs that are equally
# dissimilar up to rounding then tie in every implementation, instead of
# being ordered by summation-order noise, which differs between BLAS
# libraries, devices and the two paths here.
_RANK_GRID = 2.0**40


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


def _torch_device(features: Sequence[Any], device: Any) -> Any:
    """The device of the torch path, or None for the numpy path."""
    if device is not None:
        import torch
        return torch.device(device)
    for feat in features:
        dev = getattr(feat, 'device', None)
        # duck typing: torch tensors have .device and .detach; numpy arrays
        # (numpy >= 2 has ndarray.device == 'cpu') do not have .detach
        if hasattr(feat, 'detach') and getattr(dev, 'type', 'cpu') != 'cpu':
            return dev
    return None


def _check_2d_torch(x: Any, name: str) -> Tuple[Any, int, int]:
    """Validate a (K, ...) numpy array or tensor for the torch path.

    Returns:
        ``(flat, K, D)`` with ``flat`` of shape (K, D), still in its own
        dtype and on its own device (numpy stays numpy).
    """
    if not hasattr(x, 'detach') and not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f'{name}: expected shape (K samples, ...) with at '
                         f'least one feature axis, got ndim={x.ndim} '
                         f'shape={tuple(x.shape)}')
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(f'{name}: needs at least {MIN_SAMPLES} samples, '
                         f'got K={x.shape[0]} (shape {tuple(x.shape)})')
    if hasattr(x, 'detach'):
        x = x.detach()
        ok = not (x.is_complex() or x.is_quantized)
    else:
        ok = (np.issubdtype(x.dtype, np.floating)
              or np.issubdtype(x.dtype, np.integer)
              or np.issubdtype(x.dtype, np.bool_))
    if not ok:
        raise ValueError(f'{name}: unsupported dtype {x.dtype}')
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] < 2:
        raise ValueError(f'{name}: each sample needs at least 2 feature '
                         f'values for a Pearson correlation, got shape '
                         f'{tuple(x.shape)}')
    return flat, int(flat.shape[0]), int(flat.shape[1])


def _chunks_torch(flat: Any, step: int, device: Any):
    """Column chunks of ``flat`` as float64 tensors on ``device``; a numpy
    (possibly memory-mapped) array is moved chunk by chunk."""
    import torch
    for start in range(0, flat.shape[1], step):
        chunk = flat[:, start:start + step]
        if not hasattr(chunk, 'detach'):
            chunk = torch.from_numpy(np.ascontiguousarray(chunk))
        yield start, chunk.to(device=device, dtype=torch.float64)


def _rdm_torch(features: Any, name: str, device: Any) -> Any:
    """:func:`representation_dissimilarity` in torch: (K, K) float64 on
    ``device``, the same numbers and the same errors."""
    import torch
    flat, num_samples, dim = _check_2d_torch(features, name)
    step = max(1, _CHUNK_ELEMS // num_samples)

    # Pass 1: mean, range, finiteness; flags stay on the device (no sync
    # per chunk), the offending value is looked up only on error.
    total = torch.zeros(num_samples, dtype=torch.float64, device=device)
    lo = torch.full_like(total, float('inf'))
    hi = torch.full_like(total, float('-inf'))
    nonfinite = torch.zeros((), dtype=torch.int64, device=device)
    for _, chunk in _chunks_torch(flat, step, device):
        nonfinite += (~torch.isfinite(chunk)).sum()
        total += chunk.sum(dim=1)
        lo = torch.minimum(lo, chunk.amin(dim=1))
        hi = torch.maximum(hi, chunk.amax(dim=1))
    if int(nonfinite):
        for start, chunk in _chunks_torch(flat, step, device):
            bad = torch.nonzero(~torch.isfinite(chunk))
            if len(bad):
                sample, col = (int(v) for v in bad[0])
                kind = ('NaN' if bool(torch.isnan(chunk[sample, col])) else
                        'infinite')
                raise ValueError(f'{name}: {kind} value in sample {sample} '
                                 f'(flattened feature index {start + col})')
    constant = torch.nonzero(hi == lo).flatten()
    if len(constant):
        raise ValueError(
            f'{name}: sample(s) {constant.tolist()} are constant (zero '
            'variance), so their Pearson correlation is undefined')
    mean = total / dim

    # Pass 2: Gram matrix of the centred samples.
    gram = torch.zeros((num_samples, num_samples), dtype=torch.float64,
                       device=device)
    for _, chunk in _chunks_torch(flat, step, device):
        chunk = chunk - mean[:, None]
        gram += chunk @ chunk.T
    norm = torch.sqrt(torch.diagonal(gram))
    if not bool(torch.all(norm > 0)):
        bad = torch.nonzero(~(norm > 0)).flatten().tolist()
        raise ValueError(f'{name}: sample(s) {bad} have zero variance after '
                         'centring; Pearson correlation is undefined')
    # the same operations in the same order as the numpy path
    corr = torch.clamp(gram / torch.outer(norm, norm), -1.0, 1.0)
    corr.fill_diagonal_(1.0)
    return 1.0 - corr


def rdm_upper_triangle(features: Any, name: str = 'features',
                       device: Any = None) -> Any:
    """Strict upper triangle of one task's RDM at one split, row by row.

    Args:
        features: (K, ...) numpy array or torch tensor.
        name: How the input is called in error messages.
        device: None: numpy (returns an np.ndarray); otherwise torch on that
            device (returns a float64 tensor there).

    Returns:
        The K (K - 1) / 2 entries ``RDM[a, b]``, a < b, in row-major order.
    """
    if device is None:
        rdm = representation_dissimilarity(features, name=name)
        upper = rdm[np.triu_indices(rdm.shape[0], k=1)]
        spread = float(np.ptp(upper))
    else:
        import torch
        rdm = _rdm_torch(features, name, device)
        rows, cols = torch.triu_indices(rdm.shape[0], rdm.shape[0], 1,
                                        device=rdm.device)
        upper = rdm[rows, cols]
        spread = float(upper.max() - upper.min())
    # RDM entries lie in [0, 2]; a spread at rounding level means the
    # ranks, and so the Spearman correlation, would be pure noise.
    if spread <= _RDM_FLAT_TOL:
        raise ValueError(f'{name}: all RDM entries are equal (all sample '
                         'pairs equally dissimilar), so its Spearman '
                         'correlation is undefined')
    return upper


def average_ranks(values: Any) -> Any:
    """1-based ranks of a 1-D float tensor, ties sharing their average rank
    (``scipy.stats.rankdata(method='average')``).

    Args:
        values: 1-D torch tensor.

    Returns:
        float64 tensor of ranks, on the same device.
    """
    import torch
    sorted_vals, order = torch.sort(values)
    starts = torch.ones_like(sorted_vals, dtype=torch.bool)
    starts[1:] = sorted_vals[1:] != sorted_vals[:-1]
    tie_group = torch.cumsum(starts, 0) - 1
    counts = torch.bincount(tie_group).to(torch.float64)
    # a group holding sorted positions s+1 .. e (1-based) gets (s+1+e)/2
    ends = torch.cumsum(counts, 0)
    ranks = torch.empty(values.shape, dtype=torch.float64,
                        device=values.device)
    ranks[order] = (ends - (counts - 1) / 2)[tie_group]
    return ranks


def spearman_matrix(triangles: Sequence[Any]) -> np.ndarray:
    """Spearman correlations between N vectors of equal length.

    Values closer than about 1e-12 tie (see ``_RANK_GRID``); ties share
    their average rank.

    Args:
        triangles: N numpy arrays (scipy) or N torch tensors on one device
            (torch: average ranks, then Pearson of the ranks).

    Returns:
        (N, N) symmetric float64 np.ndarray with unit diagonal.
    """
    num = len(triangles)
    if num == 1:
        return np.ones((1, 1))
    if hasattr(triangles[0], 'detach'):
        import torch
        ranks = torch.stack(
            [average_ranks(torch.round(t * _RANK_GRID)) for t in triangles])
        ranks = ranks - ranks.mean(dim=1, keepdim=True)
        cov = ranks @ ranks.T
        scale = torch.sqrt(torch.diagonal(cov))
        rho = torch.clamp(cov / torch.outer(scale, scale), -1.0, 1.0)
        rho = rho.cpu().numpy()
    else:
        rho = spearmanr(np.rint(np.stack(triangles, axis=1) *
                                _RANK_GRID)).statistic
        if num == 2:
            # spearmanr returns a scalar, not a matrix, for two variables.
            rho = np.array([[1.0, rho], [rho, 1.0]])
    rho = np.asarray(rho, dtype=np.float64)
    rho = (rho + rho.T) / 2
    np.fill_diagonal(rho, 1.0)
    return rho


def rsa_affinity(features: Sequence[Any],
                 tasks: Optional[Sequence[str]] = None,
                 device: Any = None) -> np.ndarray:
    """RSA task affinity of N tasks at one split.

    Args:
        features: N arrays (numpy or torch) of shape (K, ...), the features
            of each task on the same K samples. Feature shapes may differ
            between tasks; K must not.
        tasks: optional task names, only used in error messages.
        device: where to compute. None: on the GPU with torch when a
            feature tensor is on one, else numpy/scipy on the CPU. A device
            (``'cuda'``, ``'cpu'``, ``torch.device``): torch there; numpy
            inputs (memory-mapped ones too) are moved in column chunks.

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
    device = _torch_device(features, device)
    num_samples = None
    triangles: List[Any] = []
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
        triangles.append(rdm_upper_triangle(feat, name=name, device=device))
    return spearman_matrix(triangles)
