"""Plots of the task affinity tensor (Step 3).

matplotlib is imported inside the functions and figures are drawn on an Agg
canvas directly (no pyplot), so importing this module is cheap and never
changes the process-wide backend.
"""
import math
import os
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = [
    'mean_offdiagonal_affinity', 'plot_affinity_heatmaps',
    'plot_affinity_vs_depth'
]

PathLike = Union[str, os.PathLike]

# Beyond this many tasks (e.g. the 40 CelebA attributes) per-cell numbers
# overlap and are left out.
MAX_ANNOTATED_TASKS = 15


def _check(affinity: Any, tasks: Sequence[str],
           layers: Sequence[str]) -> np.ndarray:
    arr = np.asarray(affinity, dtype=np.float64)
    expected = (len(layers), len(tasks), len(tasks))
    if arr.shape != expected:
        raise ValueError(f'affinity has shape {arr.shape}, expected '
                         f'(L layers, N tasks, N tasks) = {expected}')
    return arr


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: PathLike) -> None:
    out_dir = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(path, dpi=120)


def mean_offdiagonal_affinity(affinity: Any) -> np.ndarray:
    """Mean affinity over task pairs i != j at every split.

    Args:
        affinity: (L, N, N) affinity tensor with N >= 2.

    Returns:
        np.ndarray: (L,) mean of the off-diagonal entries per split.
    """
    arr = np.asarray(affinity, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 2:
        raise ValueError('affinity: expected shape (L, N, N) with N >= 2, '
                         f'got {arr.shape}')
    off = ~np.eye(arr.shape[1], dtype=bool)
    return arr[:, off].mean(axis=1)


def plot_affinity_heatmaps(affinity: Any,
                           tasks: Sequence[str],
                           layers: Sequence[str],
                           path: PathLike,
                           title: Optional[str] = None) -> None:
    """Heat map of the affinity matrix at every split, one subplot each.

    All subplots share one colour scale so that splits can be compared.

    Args:
        affinity: (L, N, N) affinity tensor.
        tasks: N task names (rows and columns).
        layers: L split names (subplot titles).
        path: output image path (e.g. ``affinity_heatmaps.png``).
        title: optional figure title.
    """
    arr = _check(affinity, tasks, layers)
    num_layers, num_tasks = arr.shape[0], arr.shape[1]
    ncols = min(num_layers, 4)
    nrows = math.ceil(num_layers / ncols)
    cell = max(2.8, 0.45 * num_tasks + 1.2)
    fig = _new_figure(cell * ncols + 1.0, cell * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    vmin, vmax = float(arr.min()), float(arr.max())
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    annotate = num_tasks <= MAX_ANNOTATED_TASKS
    image = None
    for ax, layer, mat in zip(axes, layers, arr):
        image = ax.imshow(mat, vmin=vmin, vmax=vmax, cmap='viridis')
        ax.set_title(layer)
        ax.set_xticks(range(num_tasks), labels=tasks, rotation=45,
                      ha='right', rotation_mode='anchor')
        ax.set_yticks(range(num_tasks), labels=tasks)
        if annotate:
            # Dark text on the bright end of viridis, light text elsewhere.
            threshold = vmin + 0.6 * (vmax - vmin)
            for i in range(num_tasks):
                for j in range(num_tasks):
                    ax.text(j, i, f'{mat[i, j]:.2f}', ha='center',
                            va='center', fontsize=8,
                            color='black' if mat[i, j] > threshold
                            else 'white')
    for ax in axes[num_layers:]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes[:num_layers].tolist(), shrink=0.8,
                 label='affinity')
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_affinity_vs_depth(affinity: Any,
                           tasks: Sequence[str],
                           layers: Sequence[str],
                           path: PathLike,
                           label: Optional[str] = None,
                           show_pairs: bool = True,
                           title: Optional[str] = None) -> None:
    """Mean off-diagonal affinity against depth (the paper's Figure 5).

    Args:
        affinity: (L, N, N) affinity tensor, N >= 2.
        tasks: N task names.
        layers: L split names, shallow to deep (x axis).
        path: output image path (e.g. ``affinity_vs_depth.png``).
        label: legend label of the mean curve (e.g. the data set).
        show_pairs: also draw every task pair's affinity as thin lines
            (only when N <= ``MAX_ANNOTATED_TASKS``, else they clutter).
        title: optional axes title.
    """
    arr = _check(affinity, tasks, layers)
    mean = mean_offdiagonal_affinity(arr)
    num_tasks = arr.shape[1]
    xs = np.arange(len(layers))
    fig = _new_figure(max(4.5, 0.9 * len(layers) + 2.5), 3.8)
    ax = fig.subplots()
    if show_pairs and num_tasks <= MAX_ANNOTATED_TASKS:
        for i in range(num_tasks):
            for j in range(i + 1, num_tasks):
                ax.plot(xs, arr[:, i, j], lw=1, alpha=0.6, marker='.',
                        label=f'{tasks[i]} / {tasks[j]}')
    ax.plot(xs, mean, color='black', lw=2.5, marker='o',
            label=label or 'mean over task pairs')
    ax.set_xticks(xs, labels=layers, rotation=30, ha='right',
                  rotation_mode='anchor')
    ax.set_xlabel('split (shallow to deep)')
    ax.set_ylabel('task affinity')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    if title:
        ax.set_title(title)
    _save(fig, path)
