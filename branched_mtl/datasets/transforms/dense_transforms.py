"""Geometric transforms for dense multi-task targets.

mmseg's transforms already move every key listed in ``results['seg_fields']``
with the image (flip, crop, resize with nearest interpolation, rotate ...).
Two rules that mmseg does not know are added here, by subclassing:

- ``results['vector_fields']``: keys of ``(H, W, C)`` maps whose channel 0 is
  an x component and channel 1 a y component (surface normals, instance
  offsets). A horizontal flip negates x, a vertical flip negates y.
- ``results['offset_fields']``: keys of ``(H, W, 2)`` maps of ``(dx, dy)`` in
  pixels (instance offsets). A resize scales them with the image.

Both lists are subsets of ``seg_fields``; the loading step fills them.
"""
import numpy as np
from mmseg.datasets.transforms import RandomFlip, Resize

from branched_mtl.registry import TRANSFORMS


def add_dense_field(results: dict, key: str, value: np.ndarray, *,
                    vector: bool = False, offset: bool = False) -> None:
    """Store a dense target so that every geometric transform moves it.

    Args:
        results: The pipeline's results dict.
        key: Name of the target (``gt_depth_map``, ``gt_normal_map`` ...).
        value: ``(H, W)`` or ``(H, W, C)`` array aligned with the image.
        vector: Channels 0 and 1 are x and y components (flips negate them).
        offset: Channels 0 and 1 are pixel displacements (resizes scale
            them).
    """
    results[key] = value
    for name, wanted in (('seg_fields', True), ('vector_fields', vector),
                         ('offset_fields', offset)):
        fields = results.setdefault(name, [])
        if wanted and key not in fields:
            fields.append(key)


@TRANSFORMS.register_module()
class DenseRandomFlip(RandomFlip):
    """mmseg's ``RandomFlip`` that also negates the flipped components of
    ``vector_fields`` (x for horizontal, y for vertical, both for diagonal).

    Args:
        **kwargs: As for mmseg's ``RandomFlip`` (``prob``, ``direction``).
    """

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        direction = results['flip_direction']
        channels = dict(horizontal=(0, ), vertical=(1, ),
                        diagonal=(0, 1))[direction]
        for key in results.get('vector_fields', []):
            value = results.get(key)
            if value is None:
                continue
            value = np.array(value, copy=True)
            for c in channels:
                value[..., c] = -value[..., c]
            results[key] = value


@TRANSFORMS.register_module()
class DenseResize(Resize):
    """mmseg's ``Resize`` that also rescales pixel ``offset_fields``.

    Dense targets are resized with nearest interpolation (mmseg's rule, so no
    label or depth is invented at boundaries); offsets in pixels are then
    multiplied by the actual width and height ratios.

    Args:
        **kwargs: As for mmseg's ``Resize`` (``scale``, ``keep_ratio`` ...).
    """

    def _resize_seg(self, results: dict) -> None:
        before = {
            key: results[key].shape[:2]
            for key in results.get('offset_fields', [])
            if results.get(key) is not None
        }
        super()._resize_seg(results)
        for key, (h, w) in before.items():
            new_h, new_w = results[key].shape[:2]
            value = results[key].astype(np.float32, copy=True)
            value[..., 0] *= new_w / w
            value[..., 1] *= new_h / h
            results[key] = value
