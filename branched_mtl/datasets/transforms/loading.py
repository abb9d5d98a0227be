"""Loading transforms for the real data sets' dense targets.

Each reads one official annotation file, validates it (readable, same size
as the image, known ids) and registers the target in ``seg_fields`` (and
``vector_fields`` / ``offset_fields``) so that every later geometric
transform moves it with the image. Errors name the file and the sample.
"""
import json
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations, LoadDepthAnnotation

from branched_mtl.registry import TRANSFORMS
from .dense_transforms import add_dense_field

# Cityscapes labelIds -> trainIds (cityscapesscripts' labels.py); others 255
CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18
}
CITYSCAPES_NUM_IDS = 34  # labelIds 0..33


def _read(path: str, results: dict, what: str, backend_args=None,
          flag: str = 'unchanged', channel_order: str = 'bgr') -> np.ndarray:
    where = f'sample {results.get("sample_idx", "?")} ({results.get("img_path")})'
    try:
        data = fileio.get(path, backend_args=backend_args)
    except (FileNotFoundError, OSError) as err:
        raise FileNotFoundError(
            f'{what} {path} of {where} cannot be read: {err}') from err
    try:
        arr = mmcv.imfrombytes(data, flag=flag, channel_order=channel_order,
                               backend='cv2')
    except Exception as err:  # noqa: BLE001 - decoders raise anything
        raise ValueError(f'{what} {path} of {where} is corrupt: {err}') \
            from err
    if arr is None:
        raise ValueError(f'{what} {path} of {where} is corrupt (cannot be '
                         'decoded)')
    img = results.get('img')
    if img is not None and arr.shape[:2] != img.shape[:2]:
        raise ValueError(f'{what} {path} of {where} is {arr.shape[:2]} but '
                         f'the image is {img.shape[:2]}')
    return arr


def _read_uint16(path: str, results: dict, what: str,
                 backend_args=None) -> np.ndarray:
    """A 16-bit single-channel png (depth, disparity), checked."""
    arr = _read(path, results, what, backend_args)
    if arr.ndim != 2 or arr.dtype != np.uint16:
        raise ValueError(f'{what} {path} of sample '
                         f'{results.get("sample_idx", "?")} must be a 16-bit '
                         f'single-channel png, got {arr.dtype} {arr.shape}')
    return arr


@TRANSFORMS.register_module()
class LoadCityscapesAnnotations(BaseTransform):
    """Read Cityscapes' official annotations for the selected tasks.

    - ``semseg``: ``*_gtFine_labelIds.png`` mapped to the 19 train ids
      (other ids 255); an id above 33 is an error.
    - ``depth``: ``*_disparity.png`` (``d = (p - 1) / 256``, ``p = 0``
      invalid) converted to metres with the ``*_camera.json`` baseline and
      focal length: ``depth = baseline * fx / d`` (0 where invalid).
    - ``instance``: ``*_gtFine_instanceIds.png`` (ids >= 1000 are instances
      of "thing" classes) to offsets ``(dx, dy)`` to each instance's centre.

    Args:
        tasks: Tasks to load (default: those in ``results['task_fields']``).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, tasks: Optional[list] = None,
                 backend_args: Optional[dict] = None) -> None:
        self.tasks = tasks
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        from branched_mtl.datasets.synthetic_scenes import instance_offsets
        tasks = self.tasks or list(results.get('task_fields', {}))
        results.setdefault('seg_fields', [])
        where = f'sample {results.get("sample_idx", "?")}'
        if 'semseg' in tasks:
            path = results['seg_map_path']
            ids = _read(path, results, 'label map', self.backend_args)
            if ids.ndim != 2:
                raise ValueError(f'label map {path} of {where} must be a '
                                 f'single-channel png, got {ids.shape}')
            if ids.max() >= CITYSCAPES_NUM_IDS:
                raise ValueError(
                    f'label map {path} of {where} has label id '
                    f'{int(ids.max())}; Cityscapes labelIds are 0..33 (is it '
                    'a labelTrainIds or color png?)')
            lut = np.full(256, 255, np.uint8)
            for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
                lut[label_id] = train_id
            add_dense_field(results, 'gt_seg_map', lut[ids.astype(np.uint8)])
        if 'depth' in tasks:
            disp = _read_uint16(results['disparity_path'], results,
                                'disparity map', self.backend_args)
            cam_path = results['camera_path']
            try:
                cam = json.loads(fileio.get_text(
                    cam_path, backend_args=self.backend_args))
                baseline = float(cam['extrinsic']['baseline'])
                fx = float(cam['intrinsic']['fx'])
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise ValueError(f'camera file {cam_path} of {where} is '
                                 f'missing or corrupt: {err!r}') from err
            d = (disp.astype(np.float32) - 1.0) / 256.0
            valid = (disp > 0) & (d > 0)
            depth = np.zeros(disp.shape, np.float32)
            depth[valid] = baseline * fx / d[valid]
            add_dense_field(results, 'gt_depth_map', depth)
        if 'instance' in tasks:
            path = results['instance_path']
            ids = _read(path, results, 'instance map', self.backend_args)
            if ids.ndim != 2:
                raise ValueError(f'instance map {path} of {where} must be '
                                 f'single-channel, got {ids.shape}')
            ids = ids.astype(np.int64)
            add_dense_field(results, 'gt_offset_map',
                            instance_offsets(np.where(ids >= 1000, ids, 0)),
                            vector=True, offset=True)
        return results


def _has_task(results: dict, task: str) -> bool:
    # samples without task_fields come from data sets that list no tasks:
    # load everything, as the stock transforms do
    return task in results.get('task_fields', {task: None})


@TRANSFORMS.register_module()
class LoadTaskAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` (semantic labels), skipped for samples
    whose tasks leave ``semseg`` out: a single-task copy of a multi-task
    config keeps the multi-task pipeline, and its data set lists no label
    files for the other tasks."""

    def transform(self, results: dict) -> dict:
        if not _has_task(results, 'semseg'):
            return results
        return super().transform(results)


@TRANSFORMS.register_module()
class LoadTaskDepthAnnotation(LoadDepthAnnotation):
    """mmseg's ``LoadDepthAnnotation``, skipped for samples whose tasks
    leave ``depth`` out (see :class:`LoadTaskAnnotations`)."""

    def transform(self, results: dict) -> dict:
        if not _has_task(results, 'depth'):
            return results
        return super().transform(results)


@TRANSFORMS.register_module()
class LoadNormalMap(BaseTransform):
    """Read surface normals stored as an RGB png (``n = rgb / 127.5 - 1``,
    x y z in the R G B channels; black = no normal).

    Normals are re-normalised; pixels without one become the zero vector,
    which losses and metrics leave out. Samples whose ``task_fields`` leave
    out ``normals`` are passed through.

    Args:
        key: Results key of the file path.
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, key: str = 'normal_map_path',
                 backend_args: Optional[dict] = None) -> None:
        self.key = key
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        if not _has_task(results, 'normals'):
            # a single-task copy of a config keeps the multi-task pipeline
            return results
        path = results[self.key]
        rgb = _read(path, results, 'normal map', self.backend_args,
                    flag='color', channel_order='rgb')
        valid = rgb.any(-1)
        n = rgb.astype(np.float32) / 127.5 - 1.0
        norm = np.linalg.norm(n, axis=-1, keepdims=True)
        n = np.where(valid[..., None] & (norm > 0), n / np.maximum(norm, 1e-6),
                     0).astype(np.float32)
        add_dense_field(results, 'gt_normal_map', n, normal=True)
        return results


@TRANSFORMS.register_module()
class LoadNYUv2Mat(BaseTransform):
    """Read one sample of the official ``nyu_depth_v2_labeled.mat``.

    The data info comes from ``NYUv2MatMultiTask`` (``mat_path``,
    ``mat_index``, ``label_lut``, ``mat_depth_key``). The file's arrays are
    in HDF5 axis order (MATLAB's reversed), so each is transposed back to
    ``(H, W)``. Results match the folder layout's loaders:

    - ``img``: ``(H, W, 3)`` uint8 BGR, as ``LoadImageFromFile`` gives;
    - ``gt_seg_map``: raw labels through ``label_lut`` (void = ignore index);
    - ``gt_depth_map``: float32 metres (0 = no depth).

    Args:
        tasks: Tasks to load (default: those in ``results['task_fields']``;
            ``normals`` is ``LoadNormalMap``'s).
    """

    def __init__(self, tasks: Optional[list] = None) -> None:
        self.tasks = tasks

    def transform(self, results: dict) -> dict:
        from branched_mtl.datasets.utils import open_hdf5
        path, i = results['mat_path'], results['mat_index']
        where = f'image {i + 1} of {path}'
        f = open_hdf5(path)
        try:
            # (3, W, H) -> (H, W, 3), RGB -> BGR
            img = f['images'][i].transpose(2, 1, 0)[..., ::-1]
            results['img'] = np.ascontiguousarray(img)
            results['img_shape'] = results['ori_shape'] = img.shape[:2]
            tasks = self.tasks or list(results.get('task_fields', {}))
            if 'semseg' in tasks:
                labels = f['labels'][i].T
                lut = results['label_lut']
                if labels.max() >= len(lut):
                    raise ValueError(f'labels of {where} reach '
                                     f'{int(labels.max())}; the mapping '
                                     f'covers 0..{len(lut) - 1}')
                add_dense_field(results, 'gt_seg_map', lut[labels])
            if 'depth' in tasks:
                key = results.get('mat_depth_key', 'depths')
                depth = np.ascontiguousarray(f[key][i].T, np.float32)
                add_dense_field(results, 'gt_depth_map',
                                np.nan_to_num(depth, nan=0.0))
        except (KeyError, OSError) as err:
            raise ValueError(f'{where} cannot be read: {err!r}') from err
        return results


def sunrgbd_depth_metres(raw: np.ndarray,
                         max_depth: Optional[float] = 8.0) -> np.ndarray:
    """Depth in metres of a SUN RGB-D depth png, as the toolbox reads it.

    ``read3dPoints.m``: ``bitor(bitshift(d, -3), bitshift(d, 16 - 3))``,
    a 16-bit rotation right by 3 bits, divided by 1000 (millimetres), then
    values above 8 m set to 8. The depth is in the upper 13 bits; a pixel
    whose lowest 3 bits are set rotates to >= 8.192 m and so ends at the
    clip. 0 stays 0 (no depth).

    Args:
        raw: ``(H, W)`` uint16 png values.
        max_depth: Clip in metres (None: no clip).

    Returns:
        ``(H, W)`` float32 metres.
    """
    raw = raw.astype(np.uint16)
    # uint16 arithmetic drops the bits shifted out, like MATLAB's bitshift
    rotated = (raw >> np.uint16(3)) | (raw << np.uint16(13))
    depth = rotated.astype(np.float32) / 1000.0
    if max_depth is not None:
        depth = np.minimum(depth, np.float32(max_depth))
    return depth


@TRANSFORMS.register_module()
class LoadSUNRGBDAnnotations(BaseTransform):
    """Read SUN RGB-D's annotations for the selected tasks.

    - ``semseg``: ``label37/<name>.png`` (``seg_map_path``), 0 = void and
      1..37 (``seg37list.mat``), to 0..36 with void 255 (mmseg's
      ``reduce_zero_label``); a label above 37 is an error.
    - ``depth``: the scene's ``depth/`` or ``depth_bfx/`` png
      (``depth_map_path``) in metres, see :func:`sunrgbd_depth_metres`.

    Both must be the image's size (checked here, before any resize).

    Args:
        tasks: Tasks to load (default: those in ``results['task_fields']``).
        max_depth: Depth clip in metres, 8 like the toolbox (None: none).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, tasks: Optional[list] = None,
                 max_depth: Optional[float] = 8.0,
                 backend_args: Optional[dict] = None) -> None:
        self.tasks = tasks
        self.max_depth = max_depth
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        tasks = self.tasks or list(results.get('task_fields', {}))
        where = f'sample {results.get("sample_idx", "?")}'
        if 'semseg' in tasks:
            path = results['seg_map_path']
            labels = _read(path, results, 'label map', self.backend_args)
            if labels.ndim != 2 or labels.max() > 37:
                raise ValueError(
                    f'label map {path} of {where} must be single-channel '
                    f'0..37 (seg37list), got {labels.shape} up to '
                    f'{labels.max()}')
            # 0 (void) -> 255, k -> k - 1
            add_dense_field(results, 'gt_seg_map', (
                labels.astype(np.int16) - 1).astype(np.uint8))
        if 'depth' in tasks:
            raw = _read_uint16(results['depth_map_path'], results,
                               'depth map', self.backend_args)
            add_dense_field(results, 'gt_depth_map',
                            sunrgbd_depth_metres(raw, self.max_depth))
        return results
