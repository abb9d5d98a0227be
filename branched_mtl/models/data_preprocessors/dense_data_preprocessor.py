"""A data preprocessor that pads every dense target with the images."""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor
from mmengine.structures import BaseDataElement, PixelData

from branched_mtl.registry import MODELS

# value of padded pixels: "no ground truth" for each target
PAD_VALUES = dict(
    gt_sem_seg=255,
    gt_edge_map=255,
    gt_depth_map=0.0,
    gt_normal_map=0.0,
    gt_offset_map=math.nan,
)


@MODELS.register_module()
class DenseDataPreprocessor(ImgDataPreprocessor):
    """mmengine's ``ImgDataPreprocessor`` that also pads dense targets.

    Images are normalised and padded (bottom and right) by the parent; then
    in training every ``PixelData`` field of every task's sub-sample is
    padded to the batch size with the value that marks "no ground truth"
    (``PAD_VALUES``: 255 for labels, 0 for depth and normals, NaN for
    offsets), unlike mmseg's ``SegDataPreProcessor``, which pads only
    ``gt_sem_seg``, ``gt_edge_map`` and ``gt_depth_map``. ``pad_shape`` and
    ``batch_input_shape`` are set on every sample so heads resize to the
    padded input and predictions can be cropped back to ``img_shape``. At
    test time targets stay at their own size (predictions are cropped).

    Args:
        pad_values: ``{field: value}`` overriding ``PAD_VALUES``; a field not
            listed raises an error when it needs padding.
        **kwargs: As for ``ImgDataPreprocessor`` (``mean``, ``std``,
            ``pad_size_divisor``, ``pad_value``, ``bgr_to_rgb`` ...).
    """

    def __init__(self, pad_values: Optional[Dict[str, float]] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.pad_values = {**PAD_VALUES, **dict(pad_values or {})}

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs, samples = data['inputs'], data.get('data_samples')
        if samples is None:
            return data
        h, w = inputs.shape[-2:]
        for sample in samples:
            sample.set_metainfo(dict(batch_input_shape=(h, w),
                                     pad_shape=(h, w)))
            if training:
                self._pad_sample(sample, h, w)
        return data

    def _pad_sample(self, sample: BaseDataElement, h: int, w: int) -> None:
        for task in sample.keys():
            sub = sample.get(task)
            if not isinstance(sub, BaseDataElement):
                continue
            for name in list(sub.keys()):
                value = sub.get(name)
                if not isinstance(value, PixelData):
                    continue
                padded = self._pad(value.data, h, w, name, task, sub)
                # a new PixelData only where padding changed the target
                # (building one copies its metainfo: per-step overhead)
                if padded is not value.data:
                    sub.set_data({name: PixelData(data=padded,
                                                  **value.metainfo)})

    def _pad(self, data: torch.Tensor, h: int, w: int, name: str, task: str,
             sub: BaseDataElement) -> torch.Tensor:
        dh, dw = h - data.shape[-2], w - data.shape[-1]
        if dh == 0 and dw == 0:
            return data
        where = sub.metainfo.get('img_path', sub.metainfo.get('sample_idx'))
        if dh < 0 or dw < 0:
            raise ValueError(
                f'task {task!r}, {name} of sample {where}: target '
                f'{tuple(data.shape[-2:])} is larger than the batch input '
                f'{(h, w)}')
        if name not in self.pad_values:
            raise KeyError(f'task {task!r}, sample {where}: no pad value for '
                           f'{name!r}; add it to pad_values')
        value = self.pad_values[name]
        if not data.is_floating_point() and isinstance(value, float) \
                and math.isnan(value):
            raise TypeError(f'{name}: NaN padding needs a float target')
        return F.pad(data, (0, dw, 0, dh), value=value)
