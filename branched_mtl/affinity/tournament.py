"""Tournament-matrix task affinity (paper section 3.3, Step 3).

For one target task, every source encoder (the frozen bottom layers of a
single-task model) was fine-tuned on the target; their per-sample losses on
the same held-out samples are compared pairwise. Following Taskonomy, which
the paper adapts:

* ``w_ij`` = fraction of samples where source ``i`` has a *strictly* lower
  loss than source ``j`` (ties count for neither);
* ``W`` is clipped to ``[0.001, 0.999]`` and ``W' = W / W^T`` elementwise;
* the performance vector is the principal right eigenvector of ``W'``,
  positive and L1-normalised.

Stacking the vectors of all targets gives ``P`` (row = target, column =
source encoder) and the affinity is ``A = (P + P^T) / 2``.
"""
from typing import Any, Optional, Sequence

import numpy as np

CLIP_MIN = 0.001
CLIP_MAX = 0.999
MIN_SAMPLES = 3

__all__ = [
    'performance_vector', 'performance_matrix', 'tournament_matrix',
    'tournament_affinity', 'to_float64_array'
]


def to_float64_array(x: Any, name: str) -> np.ndarray:
    """Convert a numpy array or a (possibly GPU) torch tensor to float64.

    Torch is detected by duck typing so that this module never imports it.

    Args:
        x: array-like or torch tensor.
        name: how the input is called in error messages.

    Returns:
        np.ndarray: a float64 copy (or view) of ``x`` on the CPU.
    """
    if hasattr(x, 'detach'):
        x = x.detach().cpu()
        if hasattr(x, 'double'):
            x = x.double()
        x = x.numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{name}: cannot be converted to a float array '
                         f'({e})') from e


def _label(tasks: Optional[Sequence[str]], idx: int) -> str:
    if tasks is not None and idx < len(tasks):
        return f'{idx} ({tasks[idx]!r})'
    return str(idx)


def _check_losses_2d(losses: np.ndarray, name: str,
                     sources: Optional[Sequence[str]]) -> None:
    if losses.ndim != 2:
        raise ValueError(f'{name}: expected shape (S sources, K samples), '
                         f'got ndim={losses.ndim} shape={losses.shape}')
    num_sources, num_samples = losses.shape
    if num_sources < 1:
        raise ValueError(f'{name}: needs at least one source, got shape '
                         f'{losses.shape}')
    if num_samples < MIN_SAMPLES:
        raise ValueError(f'{name}: needs at least {MIN_SAMPLES} samples, '
                         f'got K={num_samples} (shape {losses.shape})')
    bad = ~np.isfinite(losses)
    if bad.any():
        src, sample = (int(v) for v in np.argwhere(bad)[0])
        kind = 'NaN' if np.isnan(losses[src, sample]) else 'infinite'
        raise ValueError(
            f'{name}: {kind} loss for source {_label(sources, src)} at '
            f'sample {sample} ({int(bad.sum())} non-finite value(s) in '
            f'total)')


def tournament_matrix(losses: Any) -> np.ndarray:
    """Win-fraction matrix ``W`` of one target, before clipping.

    Args:
        losses: (S, K) per-sample losses of S source encoders.

    Returns:
        np.ndarray: (S, S), ``W[i, j]`` = fraction of samples where source
        ``i`` has a strictly lower loss than source ``j``.
    """
    x = to_float64_array(losses, 'losses')
    _check_losses_2d(x, 'losses', None)
    return (x[:, None, :] < x[None, :, :]).mean(axis=2)


def performance_vector(losses: Any,
                       sources: Optional[Sequence[str]] = None,
                       name: str = 'losses') -> np.ndarray:
    """Performance of S source encoders on one target task.

    Args:
        losses: (S, K) per-sample losses of S source encoders on the same K
            held-out samples (numpy array or torch tensor).
        sources: optional source names, only used in error messages.
        name: how the input is called in error messages.

    Returns:
        np.ndarray: (S,) positive, L1-normalised principal right
        eigenvector of the normalised tournament matrix ``W / W^T``.
    """
    x = to_float64_array(losses, name)
    _check_losses_2d(x, name, sources)
    wins = np.clip((x[:, None, :] < x[None, :, :]).mean(axis=2), CLIP_MIN,
                   CLIP_MAX)
    ratio = wins / wins.T
    eigvals, eigvecs = np.linalg.eig(ratio)
    # W' is strictly positive, so by Perron-Frobenius the eigenvalue of
    # largest real part is real and simple and its eigenvector has one sign.
    top = int(np.argmax(eigvals.real))
    vec = eigvecs[:, top].real
    vec = vec / vec.sum()
    if not np.all(vec > 0):
        raise ValueError(f'{name}: principal eigenvector is not positive '
                         f'({vec}); the tournament matrix is degenerate')
    return vec


def performance_matrix(losses: Any,
                       tasks: Optional[Sequence[str]] = None) -> np.ndarray:
    """Stack the performance vectors of all targets into ``P``.

    Args:
        losses: (N targets, N sources, K) per-sample losses, where
            ``losses[i, j]`` are the losses on target ``i`` of the network
            using the frozen encoder layers of task ``j``.
        tasks: optional task names (same order on both axes), only used in
            error messages.

    Returns:
        np.ndarray: (N, N) ``P``, row = target, column = source encoder;
        every row sums to 1.
    """
    x = to_float64_array(losses, 'losses')
    if x.ndim != 3:
        raise ValueError('losses: expected shape (N targets, N sources, '
                         f'K samples), got ndim={x.ndim} shape={x.shape}')
    if x.shape[0] != x.shape[1]:
        raise ValueError(f'losses: number of targets ({x.shape[0]}) and '
                         f'sources ({x.shape[1]}) differ (shape {x.shape}); '
                         'both axes must list the same N tasks')
    if tasks is not None and len(tasks) != x.shape[0]:
        raise ValueError(f'losses: {x.shape[0]} tasks on the axes but '
                         f'{len(tasks)} task names given')
    return np.stack([
        performance_vector(
            x[i], sources=tasks, name=f'losses[target {_label(tasks, i)}]')
        for i in range(x.shape[0])
    ])


def tournament_affinity(losses: Any,
                        tasks: Optional[Sequence[str]] = None) -> np.ndarray:
    """Symmetric task affinity ``A = (P + P^T) / 2`` for one split.

    Args:
        losses: (N targets, N sources, K) per-sample losses, see
            :func:`performance_matrix`.
        tasks: optional task names, only used in error messages.

    Returns:
        np.ndarray: (N, N) symmetric affinity matrix.
    """
    p = performance_matrix(losses, tasks)
    return (p + p.T) / 2
