"""MultiDigits: two handwritten digits side by side, five tasks.

Built from scikit-learn's bundled ``load_digits`` (real handwriting, no
download), so the whole method runs anywhere.
"""
import functools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from scipy.ndimage import zoom

from branched_mtl.registry import DATASETS
from .utils import select_tasks

SPLITS = ('train', 'val', 'test')


def _task_labels(left: int, right: int) -> Dict[str, int]:
    return dict(left=left, right=right, left_parity=left % 2,
                right_parity=right % 2, sum=left + right)


@DATASETS.register_module()
class MultiDigits(BaseDataset):
    """Pairs of handwritten digits with five classification tasks.

    Each image (``32 x 64``, 3 identical channels) holds two of sklearn's
    8x8 digits, upscaled to ``digit_size`` pixels, each at a random offset
    within its half, plus Gaussian noise. Tasks: ``left`` (10 classes),
    ``right`` (10), ``left_parity`` (2), ``right_parity`` (2), ``sum`` (19).
    The source digits are split 60/20/20 into train/val/test with a fixed
    seed, so no handwritten digit appears in two splits.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``.
        num_samples: Number of pairs in this split.
        tasks: Tasks whose labels are given (default: all five).
        seed: Seed of the digit split and of the pairs.
        noise: Standard deviation of the pixel noise, in [0, 1] units.
        digit_size: Side of an upscaled digit in pixels.
        pipeline: Transforms applied to each sample.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(
        tasks=('left', 'right', 'left_parity', 'right_parity', 'sum'),
        num_classes=dict(left=10, right=10, left_parity=2, right_parity=2,
                         sum=19))
    IMAGE_SHAPE = (32, 64)

    def __init__(self,
                 split: str = 'train',
                 num_samples: int = 2000,
                 tasks: Optional[Sequence[str]] = None,
                 seed: int = 0,
                 noise: float = 0.1,
                 digit_size: int = 24,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'MultiDigits: split must be one of {SPLITS}, '
                             f'got {split!r}')
        tasks = select_tasks('MultiDigits', tasks, self.METAINFO['tasks'])
        if num_samples < 1:
            raise ValueError(f'MultiDigits: num_samples must be >= 1, got '
                             f'{num_samples}')
        if not 8 <= digit_size <= self.IMAGE_SHAPE[0]:
            raise ValueError(f'MultiDigits: digit_size must be in [8, '
                             f'{self.IMAGE_SHAPE[0]}], got {digit_size}')
        self.split = split
        self.num_samples = num_samples
        self.tasks = tasks
        self.seed = seed
        self.noise = noise
        self.digit_size = digit_size
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('tasks', tasks)
        super().__init__(
            metainfo=metainfo, pipeline=pipeline, serialize_data=False,
            **kwargs)

    @staticmethod
    def source_indices(split: str, seed: int = 0) -> np.ndarray:
        """Indices into ``load_digits`` that ``split`` draws its digits from.

        Disjoint between splits by construction.
        """
        from sklearn.datasets import load_digits
        n = len(load_digits().target)
        order = np.random.default_rng(seed).permutation(n)
        cut1, cut2 = int(0.6 * n), int(0.8 * n)
        return np.sort(np.split(order, [cut1, cut2])[SPLITS.index(split)])

    def load_data_list(self) -> List[dict]:
        # every run of a sweep worker, and the probe hooks of one run,
        # build the same pairs again: rendered once per process
        return list(_render_pairs(self.split, self.num_samples,
                                  tuple(self.tasks), self.seed, self.noise,
                                  self.digit_size))

    @classmethod
    def render(cls, split: str, num_samples: int, tasks: Tuple[str, ...],
               seed: int, noise: float, digit_size: int) -> List[dict]:
        """The pairs of a split (what :meth:`load_data_list` returns)."""
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = digits.images.astype(np.float32) / 16.0
        pool = cls.source_indices(split, seed)
        # a different stream per split so val/test pairs differ from train's
        rng = np.random.default_rng([seed, SPLITS.index(split), num_samples])
        scale = digit_size / 8.0
        h, w = cls.IMAGE_SHAPE
        room = h - digit_size
        zoomed: Dict[int, np.ndarray] = {}  # a digit is drawn many times
        data_list = []
        for idx in range(num_samples):
            pair = rng.choice(pool, size=2)
            canvas = np.zeros((h, w), np.float32)
            for side, src in enumerate(pair):
                if src not in zoomed:
                    zoomed[src] = np.clip(
                        zoom(images[src], scale, order=1), 0, 1)
                y, x = rng.integers(0, room + 1, size=2)
                x0 = side * (w // 2) + x
                canvas[y:y + digit_size, x0:x0 + digit_size] = zoomed[src]
            canvas += rng.normal(0, noise, canvas.shape)
            img = (np.clip(canvas, 0, 1) * 255).astype(np.uint8)
            labels = _task_labels(*(int(digits.target[s]) for s in pair))
            data_list.append(
                dict(
                    img=np.repeat(img[..., None], 3, axis=2),
                    img_shape=(h, w),
                    ori_shape=(h, w),
                    source_digits=[int(s) for s in pair],
                    sample_idx=idx,
                    gt_label={t: labels[t] for t in tasks}))
        return data_list


@functools.lru_cache(maxsize=8)
def _render_pairs(*args) -> Tuple[dict, ...]:
    # a tuple: the cached list itself is never handed out (mmengine
    # deep-copies each item it returns, so the items are safe to share)
    return tuple(MultiDigits.render(*args))
