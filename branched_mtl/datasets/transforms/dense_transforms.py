"""Geometric transforms for dense multi-task targets.

mmseg's transforms already move every key listed in ``results['seg_fields']``
with the image (flip, crop, resize with nearest interpolation, rotate ...).
Rules that mmseg does not know are added here, by subclassing:

- ``results['vector_fields']``: keys of ``(H, W, C)`` maps whose channel 0 is
  an x component and channel 1 a y component (surface normals, instance
  offsets). A horizontal flip negates x, a vertical flip negates y.
- ``results['offset_fields']``: keys of ``(H, W, 2)`` maps of ``(dx, dy)`` in
  pixels (instance offsets). A resize scales them with the image.
- ``results['normal_fields']``: keys of ``(H, W, 3)`` unit surface normals
  (also in ``vector_fields``). A resize by ``sx`` in x and ``sy`` in y
  divides x by ``sx`` and y by ``sy``, then renormalises (see
  :class:`DenseResize`); crops leave them alone.

The lists are subsets of ``seg_fields``; the loading step fills them.

Axes: channel 0 of a vector goes along image columns (x, to the right) and
channel 1 along rows (y, down): the project's camera frame (x right, y down,
z forward, as in ``SyntheticScenes``), whose x and y axes are the image's.
"""
import numpy as np
from mmseg.datasets.transforms import RandomFlip, Resize

from branched_mtl.registry import TRANSFORMS


def add_dense_field(results: dict, key: str, value: np.ndarray, *,
                    vector: bool = False, offset: bool = False,
                    normal: bool = False) -> None:
    """Store a dense target so that every geometric transform moves it.

    Args:
        results: The pipeline's results dict.
        key: Name of the target (``gt_depth_map``, ``gt_normal_map`` ...).
        value: ``(H, W)`` or ``(H, W, C)`` array aligned with the image.
        vector: Channels 0 and 1 are x and y components (flips negate them).
        offset: Channels 0 and 1 are pixel displacements (resizes scale
            them).
        normal: ``(H, W, 3)`` unit surface normals (implies ``vector``;
            resizes tilt them, see :class:`DenseResize`).
    """
    results[key] = value
    for name, wanted in (('seg_fields', True),
                         ('vector_fields', vector or normal),
                         ('offset_fields', offset),
                         ('normal_fields', normal)):
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
    """mmseg's ``Resize`` that also rescales pixel ``offset_fields`` and
    tilts ``normal_fields``.

    Dense targets are resized with nearest interpolation (mmseg's rule, so no
    label or depth is invented at boundaries). With ``sx = new_w / w`` and
    ``sy = new_h / h`` (the actual ratios):

    - offsets in pixels: ``dx *= sx``, ``dy *= sy``;
    - normals: ``nx /= sx``, ``ny /= sy``, then renormalised to unit length
      (zero vectors, "no normal", stay zero). This reads the resized image
      as a picture of the scene stretched by ``(sx, sy)`` across the optical
      axis, taken by the same camera (same focal length in pixels, depth
      unchanged, as the depth map is): a surface ``z = f(x, y)`` becomes
      ``z = f(x / sx, y / sy)``, whose normal ``(-f_x, -f_y, 1)`` has its x
      and y parts divided by ``sx`` and ``sy``. A network never sees the
      intrinsics, so this keeps the normals consistent with the image it is
      shown. Note that an isotropic resize (``sx == sy != 1``) tilts normals
      too under this reading; set ``rescale_normals=False`` to read a resize
      as a change of focal length instead (camera-frame normals unchanged).

    Args:
        rescale_normals: Apply the normal rule above.
        **kwargs: As for mmseg's ``Resize`` (``scale``, ``keep_ratio`` ...).
    """

    def __init__(self, rescale_normals: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rescale_normals = rescale_normals

    def _resize_seg(self, results: dict) -> None:
        scaled = list(results.get('offset_fields', []))
        if self.rescale_normals:
            scaled += results.get('normal_fields', [])
        before = {
            key: results[key].shape[:2]
            for key in scaled if results.get(key) is not None
        }
        super()._resize_seg(results)
        for key, (h, w) in before.items():
            new_h, new_w = results[key].shape[:2]
            sx, sy = new_w / w, new_h / h
            value = results[key].astype(np.float32, copy=True)
            if key in results.get('offset_fields', []):
                value[..., 0] *= sx
                value[..., 1] *= sy
            else:
                value = stretch_normals(value, sx, sy)
            results[key] = value


def stretch_normals(normals: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Unit normals of a surface whose image is stretched by ``(sx, sy)``.

    Args:
        normals: ``(H, W, 3)`` unit normals (x, y, z); zero or non-finite
            vectors mark pixels without one and are kept as they are.
        sx: Horizontal scale factor of the image (new width / old width).
        sy: Vertical scale factor (new height / old height).

    Returns:
        ``(H, W, 3)`` float32 unit normals.
    """
    out = np.array(normals, np.float32, copy=True)
    out[..., 0] /= sx
    out[..., 1] /= sy
    norm = np.linalg.norm(out, axis=-1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        unit = out / norm
    # zero vectors ("no normal") stay zero; NaN stays NaN
    return np.where(norm > 0, unit, out).astype(np.float32)
