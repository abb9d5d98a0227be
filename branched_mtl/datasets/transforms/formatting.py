"""Pack dense and classification targets into per-task data samples."""
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmpretrain.structures import DataSample, MultiTaskDataSample
from mmseg.structures import SegDataSample

from branched_mtl.registry import TRANSFORMS

# results key -> (sample field, channels, kind); kind 'int' targets are
# labels, 'float' targets are measurements
DENSE_FIELDS = {
    'gt_seg_map': ('gt_sem_seg', 1, 'int'),
    'gt_depth_map': ('gt_depth_map', 1, 'float'),
    'gt_normal_map': ('gt_normal_map', 3, 'float'),
    'gt_edge_map': ('gt_edge_map', 1, 'int'),
    'gt_offset_map': ('gt_offset_map', 2, 'float'),
}
LABEL_FIELDS = ('gt_label', )


def _where(results: dict) -> str:
    parts = [f'{k}={results[k]!r}' for k in ('img_path', 'sample_idx')
             if results.get(k) is not None]
    return ', '.join(parts) or 'unknown sample'


def _dense_tensor(key: str, value, img_hw, results: dict,
                  ignore_index: int,
                  num_classes: Optional[int]) -> torch.Tensor:
    field, channels, kind = DENSE_FIELDS[key]
    where = _where(results)
    if not isinstance(value, np.ndarray):
        raise TypeError(f'{key} of {where} must be a numpy array, got '
                        f'{type(value).__name__}')
    if value.ndim == 2 and channels == 1:
        value = value[..., None]
    if value.ndim != 3 or value.shape[2] != channels:
        want = '(H, W)' if channels == 1 else f'(H, W, {channels})'
        raise ValueError(f'{key} of {where} must be {want}, got shape '
                         f'{value.shape}')
    if value.shape[:2] != tuple(img_hw):
        raise ValueError(f'{key} of {where} is {value.shape[:2]} but the '
                         f'image is {tuple(img_hw)}; dense targets must move '
                         'with the image (list them in seg_fields)')
    if kind == 'int':
        if not (np.issubdtype(value.dtype, np.integer)
                or value.dtype == np.bool_):
            raise TypeError(f'{key} of {where} must hold integer labels, got '
                            f'dtype {value.dtype}')
        value = value.astype(np.int64)
        limit = num_classes if key == 'gt_seg_map' else 2
        if limit is not None:
            bad = (value != ignore_index) & ((value < 0) | (value >= limit))
            if bad.any():
                ids = np.unique(value[bad])[:10].tolist()
                raise ValueError(f'{key} of {where} has label(s) {ids} out of '
                                 f'range [0, {limit}) (ignore index '
                                 f'{ignore_index})')
    else:
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f'{key} of {where} must be floating point, got '
                            f'dtype {value.dtype}')
        value = value.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackDenseTaskInputs(BaseTransform):
    """Pack an image and its per-task targets into a ``MultiTaskDataSample``.

    Each dense task gets a mmseg ``SegDataSample`` whose field is a
    ``PixelData`` of shape ``(C, H, W)``: ``gt_sem_seg`` (int64),
    ``gt_depth_map``, ``gt_normal_map`` (x, y, z), ``gt_edge_map`` (int64,
    0/1/ignore), ``gt_offset_map`` (dx, dy in pixels, NaN off instances),
    so stock mmseg heads and metrics read them unchanged. A classification
    task gets an mmpretrain ``DataSample`` with ``gt_label``.

    Targets are checked here, after the last transform: shape, dtype, size
    equal to the image, label range. A bad one raises an error naming the
    sample's file and index.

    Args:
        task_fields: ``{task: results key}`` (e.g. ``semseg='gt_seg_map'``,
            ``scene='gt_label'``). Default: ``results['task_fields']``, which
            the data sets fill for their selected tasks. A ``gt_label`` that
            is a dict is indexed by the task name.
        num_classes: ``{task: classes}`` for label range checks.
        ignore_index: Label of pixels without ground truth.
        meta_keys: Keys copied into the sample's metainfo.
    """

    def __init__(self,
                 task_fields: Optional[Dict[str, str]] = None,
                 num_classes: Optional[Dict[str, int]] = None,
                 ignore_index: int = 255,
                 meta_keys: Sequence[str] = (
                     'img_path', 'sample_idx', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction')
                 ) -> None:
        for task, key in (task_fields or {}).items():
            if key not in DENSE_FIELDS and key not in LABEL_FIELDS:
                raise ValueError(
                    f'PackDenseTaskInputs: task {task!r} names unknown field '
                    f'{key!r}; known: {list(DENSE_FIELDS) + list(LABEL_FIELDS)}')
        self.task_fields = dict(task_fields) if task_fields else None
        self.num_classes = dict(num_classes or {})
        self.ignore_index = ignore_index
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        task_fields = self.task_fields or results.get('task_fields')
        if not task_fields:
            raise KeyError(f'PackDenseTaskInputs: no task_fields given and '
                           f'none in the results of {_where(results)}')
        sample_meta = {k: results[k] for k in ('img_path', 'sample_idx')
                       if k in results}
        data_sample = MultiTaskDataSample()
        for task, key in task_fields.items():
            if key not in results:
                continue  # this sample has no ground truth for the task
            value = results[key]
            if key in LABEL_FIELDS:
                if isinstance(value, dict):
                    if task not in value:
                        continue
                    value = value[task]
                label = int(value)
                n = self.num_classes.get(task)
                if label < 0 or (n is not None and label >= n):
                    raise ValueError(
                        f'{key} of task {task!r} of {_where(results)} is '
                        f'{label}, out of range [0, {n})')
                sub = DataSample().set_gt_label(label)
            else:
                data = _dense_tensor(key, value, img.shape[:2], results,
                                     self.ignore_index,
                                     self.num_classes.get(task))
                sub = SegDataSample()
                sub.set_data({DENSE_FIELDS[key][0]: PixelData(data=data)})
            sub.set_metainfo(sample_meta)
            data_sample.set_field(sub, task)
        data_sample.set_metainfo(
            {k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(task_fields={self.task_fields}, '
                f'num_classes={self.num_classes})')
