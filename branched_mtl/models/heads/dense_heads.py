"""Decode heads for dense regression tasks: stock mmseg heads, new targets.

Each task adds a small mixin to a stock mmseg decode head (``PSPHead``, the
paper's decoder, or ``FCNHead`` as a light option). The mixin overrides only
``loss_by_feat`` (which ground-truth field is read and how) and adds
``predict_fields`` (what :class:`MultiTaskHead` stores as the prediction);
pyramid pooling, resizing, dropout and ``conv_seg`` stay mmseg's.

===========  ================  =================  ==========  ==============
task         head              ground truth       channels    prediction
===========  ================  =================  ==========  ==============
depth        ``PSPDepthHead``  ``gt_depth_map``   1           depth (>= eps)
normals      ``PSPNormalHead`` ``gt_normal_map``  3 (x,y,z)   unit vectors
edges        ``PSPEdgeHead``   ``gt_edge_map``    1           probability
instances    ``PSPOffsetHead`` ``gt_offset_map``  2 (dx, dy)  pixels
===========  ================  =================  ==========  ==============

Semantic segmentation uses the stock ``mmseg.PSPHead`` itself.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead, PSPHead
from mmseg.models.utils import resize
from torch import Tensor

from branched_mtl.registry import MODELS


def _sample_name(sample, index: int) -> str:
    meta = getattr(sample, 'metainfo', {}) or {}
    where = meta.get('img_path') or meta.get('sample_idx')
    return f'sample {index}' + (f' ({where})' if where is not None else '')


class DenseRegressionMixin:
    """What a dense, non-classification task changes in a decode head.

    Put it before the stock head in the bases:
    ``class PSPDepthHead(DepthHeadMixin, PSPHead)``.

    Class attributes:
        gt_field: Ground-truth field of the task's sub-sample.
        pred_field: Field the prediction is stored in.
        num_outputs: Output channels.
        default_loss: ``loss_decode`` when the config gives none.
    """
    gt_field: str = ''
    pred_field: str = ''
    num_outputs: int = 1
    default_loss: dict = {}

    def __init__(self, **kwargs) -> None:
        given = kwargs.get('num_classes', self.num_outputs)
        if given != self.num_outputs:
            raise ValueError(
                f'{type(self).__name__} predicts {self.num_outputs} '
                f'channel(s); got num_classes={given}')
        kwargs['num_classes'] = self.num_outputs
        kwargs.setdefault('out_channels', self.num_outputs)
        # only binary segmentation uses mmseg's threshold; set one so mmseg
        # does not warn about single-channel outputs
        kwargs.setdefault('threshold', 0.5)
        kwargs.setdefault('loss_decode', dict(self.default_loss))
        super().__init__(**kwargs)

    def _stack_batch_gt(self, batch_data_samples: Sequence) -> Tensor:
        gts = []
        for i, sample in enumerate(batch_data_samples):
            if self.gt_field not in sample:
                raise KeyError(
                    f'{type(self).__name__}: {_sample_name(sample, i)} has no '
                    f'{self.gt_field!r} (fields: {list(sample.keys())})')
            gt = sample.get(self.gt_field).data
            if gt.dim() != 3 or gt.shape[0] != self.num_outputs:
                raise ValueError(
                    f'{type(self).__name__}: {_sample_name(sample, i)}: '
                    f'{self.gt_field} must be ({self.num_outputs}, H, W), '
                    f'got {tuple(gt.shape)}')
            gts.append(gt)
        if len({tuple(g.shape) for g in gts}) > 1:
            raise ValueError(
                f'{type(self).__name__}: {self.gt_field} sizes differ in the '
                f'batch ({[tuple(g.shape) for g in gts]}); pad them with '
                'DenseDataPreprocessor')
        return torch.stack(gts).float()

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: Sequence) -> Dict[str, Tensor]:
        """Loss of the task's ``loss_decode`` on the resized outputs."""
        target = self._stack_batch_gt(batch_data_samples).to(
            seg_logits.device)
        pred = resize(
            input=seg_logits,
            size=target.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        losses_decode = self.loss_decode if isinstance(
            self.loss_decode, torch.nn.ModuleList) else [self.loss_decode]
        losses: Dict[str, Tensor] = {}
        for loss_decode in losses_decode:
            value = loss_decode(pred, target)
            name = loss_decode.loss_name
            losses[name] = losses[name] + value if name in losses else value
        return losses

    def postprocess(self, logit: Tensor) -> Tensor:
        """Prediction of one sample from its ``(C, H, W)`` output."""
        return logit

    def predict_fields(self, logit: Tensor) -> Dict[str, PixelData]:
        """The fields :class:`MultiTaskHead` stores on the task's sample."""
        return {self.pred_field: PixelData(data=self.postprocess(logit))}


class DepthHeadMixin(DenseRegressionMixin):
    """Depth (or disparity) regression; predictions are clamped to
    ``min_depth`` so log-based metrics stay finite."""
    gt_field = 'gt_depth_map'
    pred_field = 'pred_depth_map'
    num_outputs = 1
    default_loss = dict(type='DepthLoss', criterion='l1')
    min_depth = 1e-3

    def postprocess(self, logit: Tensor) -> Tensor:
        return logit.clamp(min=self.min_depth)


class NormalHeadMixin(DenseRegressionMixin):
    """Surface normals ``(x, y, z)``; predictions are unit vectors."""
    gt_field = 'gt_normal_map'
    pred_field = 'pred_normal_map'
    num_outputs = 3
    default_loss = dict(type='NormalLoss', criterion='cosine')

    def postprocess(self, logit: Tensor) -> Tensor:
        return F.normalize(logit, dim=0, eps=1e-6)


class EdgeHeadMixin(DenseRegressionMixin):
    """Edge detection; one logit per pixel, predictions are probabilities."""
    gt_field = 'gt_edge_map'
    pred_field = 'pred_edge_map'
    num_outputs = 1
    default_loss = dict(type='EdgeLoss')

    def postprocess(self, logit: Tensor) -> Tensor:
        return logit.sigmoid()


class OffsetHeadMixin(DenseRegressionMixin):
    """Instance centre offsets ``(dx, dy)`` in pixels (the paper's instance
    segmentation proxy)."""
    gt_field = 'gt_offset_map'
    pred_field = 'pred_offset_map'
    num_outputs = 2
    default_loss = dict(type='OffsetLoss', criterion='l1')


@MODELS.register_module()
class PSPDepthHead(DepthHeadMixin, PSPHead):
    """mmseg's ``PSPHead`` regressing depth (see :class:`DepthHeadMixin`).

    Args:
        **kwargs: As for ``PSPHead``; ``num_classes`` defaults to 1 and
            ``loss_decode`` to ``DepthLoss`` (L1).
    """


@MODELS.register_module()
class FCNDepthHead(DepthHeadMixin, FCNHead):
    """mmseg's ``FCNHead`` regressing depth (light option)."""


@MODELS.register_module()
class PSPNormalHead(NormalHeadMixin, PSPHead):
    """mmseg's ``PSPHead`` predicting surface normals.

    Args:
        **kwargs: As for ``PSPHead``; ``loss_decode`` defaults to
            ``NormalLoss`` (cosine).
    """


@MODELS.register_module()
class FCNNormalHead(NormalHeadMixin, FCNHead):
    """mmseg's ``FCNHead`` predicting surface normals (light option)."""


@MODELS.register_module()
class PSPEdgeHead(EdgeHeadMixin, PSPHead):
    """mmseg's ``PSPHead`` detecting edges.

    Args:
        **kwargs: As for ``PSPHead``; ``loss_decode`` defaults to the
            class-balanced ``EdgeLoss``.
    """


@MODELS.register_module()
class FCNEdgeHead(EdgeHeadMixin, FCNHead):
    """mmseg's ``FCNHead`` detecting edges (light option)."""


@MODELS.register_module()
class PSPOffsetHead(OffsetHeadMixin, PSPHead):
    """mmseg's ``PSPHead`` regressing instance centre offsets.

    Args:
        **kwargs: As for ``PSPHead``; ``loss_decode`` defaults to
            ``OffsetLoss`` (L1).
    """


@MODELS.register_module()
class FCNOffsetHead(OffsetHeadMixin, FCNHead):
    """mmseg's ``FCNHead`` regressing instance centre offsets (light
    option)."""


__all__: List[str] = [
    'DenseRegressionMixin', 'DepthHeadMixin', 'NormalHeadMixin',
    'EdgeHeadMixin', 'OffsetHeadMixin', 'PSPDepthHead', 'FCNDepthHead',
    'PSPNormalHead', 'FCNNormalHead', 'PSPEdgeHead', 'FCNEdgeHead',
    'PSPOffsetHead', 'FCNOffsetHead'
]
