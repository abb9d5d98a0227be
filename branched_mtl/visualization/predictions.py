"""Pictures of a branched model's predictions, one kind of picture per task.

A task's kind is read from the fields its head fills (or its ground truth
has), so any head that writes the usual fields is drawn without a table of
task names:

==============  ==================================  =======================
kind            prediction / ground truth field      picture
==============  ==================================  =======================
segmentation    ``pred_sem_seg`` / ``gt_sem_seg``    classes over the image,
                                                     the data set's palette
depth           ``pred_depth_map`` / ``gt_...``      colour map + its scale
normals         ``pred_normal_map`` / ``gt_...``     ``(n + 1) / 2`` as RGB
edges           ``pred_edge_map`` / ``gt_...``       edge probability, grey
offsets         ``pred_offset_map`` / ``gt_...``     hue: direction,
                                                     brightness: length
classification  ``pred_score`` / ``gt_label``        label and score as text
==============  ==================================  =======================

Arrays are what the heads give, as numpy: dense ones ``(H, W)`` for one
channel, ``(C, H, W)`` otherwise; a classification prediction is the score
vector. matplotlib is imported inside the functions and figures are drawn
on an Agg canvas (no pyplot), as in :mod:`.affinity`.
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from branched_mtl.utils.io import open_atomic

__all__ = [
    'KINDS', 'task_array', 'draw_task', 'save_task_picture', 'plot_tasks',
    'plot_predictions_vs_gt', 'figure_to_array'
]

# kind -> (prediction field, ground-truth field)
KINDS = {
    'segmentation': ('pred_sem_seg', 'gt_sem_seg'),
    'depth': ('pred_depth_map', 'gt_depth_map'),
    'normals': ('pred_normal_map', 'gt_normal_map'),
    'edges': ('pred_edge_map', 'gt_edge_map'),
    'offsets': ('pred_offset_map', 'gt_offset_map'),
    'classification': ('pred_score', 'gt_label'),
}
# label of pixels without ground truth (mmseg's ignore index)
IGNORE = 255
Panel = Tuple[str, str, np.ndarray]  # (title, kind, array)


def _numpy(value: Any) -> np.ndarray:
    data = getattr(value, 'data', value)  # PixelData / LabelData / tensor
    if hasattr(data, 'detach'):
        data = data.detach().cpu().numpy()
    return np.asarray(data)


def task_array(sample: Any, gt: bool = False
               ) -> Optional[Tuple[str, np.ndarray]]:
    """The kind and array of one task's sub-sample.

    Args:
        sample: The task's sub-sample (``SegDataSample``, ``DataSample``).
        gt: Read the ground truth instead of the prediction.

    Returns:
        ``(kind, array)``, or None when the sample has no such field.
    """
    for kind, fields in KINDS.items():
        field = fields[int(gt)]
        if sample is None or field not in sample:
            continue
        array = _numpy(sample.get(field))
        if kind != 'classification' and array.ndim == 3 \
                and array.shape[0] == 1:
            array = array[0]
        if kind == 'classification' and gt:
            array = array.reshape(-1)[:1]
        return kind, array
    return None


def _palette(num: int, palette: Optional[Sequence] = None) -> np.ndarray:
    """``num`` RGB colours in [0, 1]: the data set's palette when it has
    enough, else matplotlib's tab20 cycle."""
    if palette is not None and len(palette) >= num:
        return np.asarray(palette[:num], np.float32) / 255.0
    from matplotlib import colormaps
    cmap = colormaps['tab20']
    return np.asarray([cmap(i % 20)[:3] for i in range(num)], np.float32)


def _image01(image: Optional[np.ndarray], shape: Tuple[int, int]
             ) -> np.ndarray:
    if image is None:
        return np.full(shape + (3, ), 0.5, np.float32)
    return image.astype(np.float32) / 255.0


def _segmentation(ax, labels: np.ndarray, image: Optional[np.ndarray],
                  meta: Dict[str, Any]) -> str:
    from matplotlib.patches import Patch
    classes = list(meta.get('classes') or [])
    valid = labels != IGNORE
    num = max(len(classes), int(labels[valid].max()) + 1 if valid.any()
              else 1)
    colours = _palette(num, meta.get('palette'))
    base = _image01(image, labels.shape)
    over = colours[np.where(valid, labels, 0)]
    alpha = 0.6 * valid[..., None]
    ax.imshow(base * (1 - alpha) + over * alpha)
    present = [int(c) for c in np.unique(labels[valid])]
    names = [classes[c] if c < len(classes) else str(c) for c in present]
    ax.legend(handles=[Patch(color=colours[c], label=n)
                       for c, n in zip(present, names)],
              loc='lower left', fontsize=5, framealpha=0.6,
              handlelength=0.8, borderpad=0.2, labelspacing=0.1,
              ncol=min(len(present), 3) or 1)
    return f'{len(present)} classes'


def _depth(ax, depth: np.ndarray, vrange: Optional[Tuple[float, float]],
           gt: bool) -> str:
    # depth 0 marks pixels without ground truth in the data sets' maps
    shown = np.where(depth > 0, depth, np.nan) if gt else depth
    lo, hi = vrange or (np.nanmin(shown), np.nanmax(shown))
    im = ax.imshow(shown, cmap='magma_r', vmin=lo, vmax=hi)
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    bar.ax.tick_params(labelsize=6)
    bar.set_label('depth', fontsize=6)
    return f'{lo:.3g} to {hi:.3g}'


def _offsets(ax, offsets: np.ndarray, scale: Optional[float]) -> str:
    from matplotlib.colors import hsv_to_rgb
    dx, dy = offsets[0], offsets[1]
    length = np.hypot(dx, dy)
    finite = np.isfinite(length)
    top = scale or (float(length[finite].max()) if finite.any() else 1.0)
    hsv = np.stack([
        (np.arctan2(np.nan_to_num(dy), np.nan_to_num(dx)) / (2 * np.pi)) % 1,
        np.ones_like(dx),
        np.clip(np.nan_to_num(length) / max(top, 1e-6), 0, 1)
    ], axis=-1)
    rgb = hsv_to_rgb(hsv)
    rgb[~finite] = 1.0  # no instance here (NaN in the ground truth)
    ax.imshow(rgb)
    return f'max {top:.3g} px'


def _classification(ax, array: np.ndarray, gt: bool,
                    truth: Optional[int] = None) -> str:
    # a class task's labels are indices (a digit, a count); the data sets'
    # `classes` name the segmentation classes, not these
    ax.set_facecolor('white')
    if gt:
        ax.text(0.5, 0.5, str(int(array[0])), ha='center', va='center',
                fontsize=20, transform=ax.transAxes)
        return 'true label'
    order = np.argsort(-array)
    top = int(order[0])
    colour = 'black' if truth is None else (
        'tab:green' if truth == top else 'tab:red')
    ax.text(0.5, 0.6, str(top), ha='center', va='center', fontsize=20,
            color=colour, transform=ax.transAxes)
    others = ', '.join(f'{int(i)}: {array[i]:.2f}' for i in order[1:3])
    lines = [f'score {array[top]:.2f}', others]
    if truth is not None:
        lines.append(f'true label {truth}')
    ax.text(0.5, 0.2, '\n'.join(lines), ha='center', va='center',
            fontsize=6, transform=ax.transAxes)
    return 'predicted label'


def draw_task(ax, kind: str, array: np.ndarray,
              image: Optional[np.ndarray] = None,
              meta: Optional[Dict[str, Any]] = None,
              title: str = '', gt: bool = False,
              vrange: Optional[Tuple[float, float]] = None,
              truth: Optional[int] = None) -> None:
    """Draw one task's prediction (or ground truth) on an axis.

    Args:
        ax: A matplotlib axis.
        kind: One of :data:`KINDS`.
        array: As :func:`task_array` returns it.
        image: The RGB uint8 image the model saw (segmentation is drawn
            over it).
        meta: The data set's metainfo (``classes``, ``palette``).
        title: Title of the panel; the picture's range is appended.
        gt: The array is ground truth (pixels without it are left blank).
        vrange: Depth: the colour scale's range; offsets: ``(0, max)`` of
            the length scale. Shared by a prediction and its ground truth
            so that their colours compare.
        truth: A class task's true label, written under the prediction
            (green when they agree, red otherwise).
    """
    meta = meta or {}
    if kind == 'segmentation':
        note = _segmentation(ax, array.astype(np.int64), image, meta)
    elif kind == 'depth':
        note = _depth(ax, array.astype(np.float32), vrange, gt)
    elif kind == 'normals':
        rgb = (np.transpose(array, (1, 2, 0)) + 1) / 2
        ax.imshow(np.clip(np.nan_to_num(rgb, nan=0.5), 0, 1))
        note = 'xyz as rgb'
    elif kind == 'edges':
        shown = np.where(array == IGNORE, np.nan, array).astype(np.float32)
        ax.imshow(shown, cmap='gray_r', vmin=0, vmax=1)
        note = 'probability' if not gt else 'edges'
    elif kind == 'offsets':
        note = _offsets(ax, array.astype(np.float32),
                        vrange[1] if vrange else None)
    elif kind == 'classification':
        note = _classification(ax, np.asarray(array), gt, truth)
    else:
        raise ValueError(f'unknown task kind {kind!r}; known: {list(KINDS)}')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f'{title}\n{note}' if title else note, fontsize=7)


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str, dpi: int = 120) -> None:
    with open_atomic(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=dpi)


def figure_to_array(fig: Any) -> np.ndarray:
    """The figure's pixels, RGB uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _panel_size(shape: Tuple[int, ...]) -> Tuple[float, float]:
    h, w = shape[:2]
    aspect = w / max(h, 1)
    return 2.2 * min(max(aspect, 0.6), 3.0), 2.2


def save_task_picture(kind: str, array: np.ndarray, path: str,
                      image: Optional[np.ndarray] = None,
                      meta: Optional[Dict[str, Any]] = None,
                      title: str = '') -> None:
    """One task's picture as a PNG file (written atomically)."""
    shape = image.shape if image is not None else array.shape[-2:]
    w, h = _panel_size(shape)
    fig = _new_figure(w + (0.6 if kind == 'depth' else 0), h)
    draw_task(fig.add_subplot(), kind, array, image, meta, title)
    _save(fig, path, dpi=150)


def _image_panel(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def plot_tasks(image: np.ndarray, panels: Sequence[Panel],
               meta: Optional[Dict[str, Any]] = None,
               path: Optional[str] = None, title: str = '') -> Any:
    """The image and every task's prediction side by side.

    Args:
        image: The RGB uint8 image the model saw.
        panels: ``(task, kind, array)`` per task.
        meta: The data set's metainfo.
        path: Where to write the PNG (atomically); None writes nothing.
        title: The figure's title (the image's name).

    Returns:
        The matplotlib figure.
    """
    cols = 1 + len(panels)
    w, h = _panel_size(image.shape)
    fig = _new_figure(w * cols, h + 0.3)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    _image_panel(axes[0], image, 'image')
    for ax, (task, kind, array) in zip(axes[1:], panels):
        draw_task(ax, kind, array, image, meta, task)
    if title:
        fig.suptitle(title, fontsize=8)
    if path is not None:
        _save(fig, path)
    return fig


def _shared_range(kind: str, pred: np.ndarray, gt: Optional[np.ndarray]
                  ) -> Optional[Tuple[float, float]]:
    """One colour scale for a prediction and its ground truth."""
    if kind == 'depth':
        values = [pred.ravel()] + ([gt[gt > 0].ravel()] if gt is not None
                                   else [])
        both = np.concatenate(values)
        both = both[np.isfinite(both)]
        return (float(both.min()), float(both.max())) if both.size else None
    if kind == 'offsets':
        lengths = [np.hypot(a[0], a[1]) for a in (pred, gt) if a is not None]
        top = max((float(np.nanmax(v)) for v in lengths
                   if np.isfinite(v).any()), default=1.0)
        return 0.0, top
    return None


def plot_predictions_vs_gt(rows: Sequence[Dict[str, Any]],
                           tasks: Sequence[str], path: str,
                           meta: Optional[Dict[str, Any]] = None,
                           title: str = '') -> None:
    """A few images with every task's prediction above its ground truth
    (a class task: its true label written under the prediction).

    Args:
        rows: Per image, ``dict(image=RGB uint8, name=str, pred={task:
            (kind, array)}, gt={task: (kind, array)})``; a task missing
            from ``gt`` leaves its panel blank.
        tasks: The columns, in order.
        path: The PNG to write (atomically).
        meta: The data set's metainfo.
        title: The figure's title.
    """
    if not rows:
        raise ValueError('plot_predictions_vs_gt needs at least one image')
    # class tasks write their true label under the prediction; dense ones
    # get a ground-truth row (only when some task is dense)
    dense = any(row['pred'][t][0] != 'classification'
                for row in rows for t in tasks)
    per_image = 2 if dense else 1
    cols = 1 + len(tasks)
    w, h = _panel_size(rows[0]['image'].shape)
    fig = _new_figure(w * cols, (h + 0.2) * per_image * len(rows) + 0.3)
    axes = fig.subplots(per_image * len(rows), cols, squeeze=False)
    for r, row in enumerate(rows):
        top = axes[per_image * r]
        _image_panel(top[0], row['image'], f'{row.get("name", "")}\n'
                     'prediction')
        bottom = axes[per_image * r + 1] if dense else None
        if dense:
            _image_panel(bottom[0], row['image'], 'ground truth')
        for c, task in enumerate(tasks, start=1):
            kind, pred = row['pred'][task]
            gt = row['gt'].get(task)
            gt_array = gt[1] if gt is not None else None
            if kind == 'classification':
                truth = int(gt_array[0]) if gt_array is not None else None
                draw_task(top[c], kind, pred, title=task, truth=truth)
                if dense:
                    bottom[c].axis('off')
                continue
            vrange = _shared_range(kind, pred, gt_array)
            draw_task(top[c], kind, pred, row['image'], meta, task,
                      vrange=vrange)
            if gt is None:
                bottom[c].axis('off')
                continue
            draw_task(bottom[c], kind, gt_array, row['image'], meta, task,
                      gt=True, vrange=vrange)
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path, dpi=110)

