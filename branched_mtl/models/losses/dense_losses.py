"""Per-pixel losses of the dense tasks, on valid pixels only.

Every loss follows mmseg's loss convention (``loss_weight``, ``loss_name``,
``forward(pred, target)``), so a stock decode head's ``loss_decode`` can hold
it. ``pred`` and ``target`` are ``(N, C, H, W)``; pixels without ground truth
are left out of the mean:

- depth / disparity: ``target <= min_value`` or not finite (mmseg's
  ``DepthMetric`` convention: 0 is invalid);
- surface normals: the zero vector (or not finite);
- instance offsets: NaN (pixels on no instance);
- edges: ``ignore_index``.

A batch without a single valid pixel gives a zero loss that still has a
gradient path (so DDP does not hang on unused parameters).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from branched_mtl.registry import MODELS

CRITERIA = ('l1', 'mse')


def _masked_mean(values: Tensor, mask: Tensor, pred: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a gradient path) if none."""
    if mask.any():
        return values[mask].mean()
    return pred.sum() * 0.0


def _check_shapes(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(f'{name}: prediction {tuple(pred.shape)} and target '
                         f'{tuple(target.shape)} must both be (N, C, H, W) '
                         'and equal')


class _DenseLoss(nn.Module):

    def __init__(self, loss_weight: float = 1.0,
                 loss_name: str = 'loss') -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss in the head's loss dict (mmseg convention)."""
        return self._loss_name


@MODELS.register_module()
class DepthLoss(_DenseLoss):
    """L1 or MSE regression of depth (or disparity) on valid pixels.

    Args:
        criterion: ``'l1'`` or ``'mse'`` (the paper's Cityscapes disparity
            loss).
        min_value: Targets at or below this value are invalid.
        loss_weight: Weight of the loss.
        loss_name: Key of the loss in the loss dict.
    """

    def __init__(self, criterion: str = 'l1', min_value: float = 0.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_depth') -> None:
        super().__init__(loss_weight, loss_name)
        if criterion not in CRITERIA:
            raise ValueError(f'DepthLoss: criterion must be one of '
                             f'{CRITERIA}, got {criterion!r}')
        self.criterion = criterion
        self.min_value = float(min_value)

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes(type(self).__name__, pred, target)
        valid = torch.isfinite(target) & (target > self.min_value)
        diff = pred - torch.where(valid, target, torch.zeros_like(target))
        err = diff.abs() if self.criterion == 'l1' else diff.pow(2)
        return self.loss_weight * _masked_mean(err, valid, pred)


@MODELS.register_module()
class NormalLoss(_DenseLoss):
    """Surface normal loss on valid pixels; predictions are L2-normalised.

    ``'cosine'``: mean of ``1 - cos(angle)``; ``'l1'``: mean over valid
    pixels of the L1 distance between unit vectors (summed over x, y, z).

    Args:
        criterion: ``'cosine'`` or ``'l1'``.
        normalize: L2-normalise the prediction first.
        loss_weight: Weight of the loss.
        loss_name: Key of the loss in the loss dict.
    """

    def __init__(self, criterion: str = 'cosine', normalize: bool = True,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_normal') -> None:
        super().__init__(loss_weight, loss_name)
        if criterion not in ('cosine', 'l1'):
            raise ValueError(f'NormalLoss: criterion must be "cosine" or '
                             f'"l1", got {criterion!r}')
        self.criterion = criterion
        self.normalize = normalize

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes(type(self).__name__, pred, target)
        finite = torch.isfinite(target).all(1)
        target = torch.where(torch.isfinite(target), target,
                             torch.zeros_like(target))
        valid = finite & (target.norm(dim=1) > 0.5)
        if self.normalize:
            pred = F.normalize(pred, dim=1, eps=1e-6)
        if self.criterion == 'cosine':
            err = 1.0 - (pred * target).sum(1)
        else:
            err = (pred - target).abs().sum(1)
        return self.loss_weight * _masked_mean(err, valid, pred)


@MODELS.register_module()
class EdgeLoss(_DenseLoss):
    """Weighted binary cross-entropy for edges on logits.

    With ``pos_weight=None`` the weights balance the classes per batch as in
    HED: edge pixels weigh ``beta = |negatives| / |valid|``, the others
    ``1 - beta``; a number fixes ``beta`` (0.95 is common for thin edges).
    The weighted sum is divided by the number of valid pixels.

    Args:
        pos_weight: ``beta`` or None for per-batch balancing.
        ignore_index: Target value of pixels left out.
        loss_weight: Weight of the loss.
        loss_name: Key of the loss in the loss dict.
    """

    def __init__(self, pos_weight: Optional[float] = None,
                 ignore_index: int = 255, loss_weight: float = 1.0,
                 loss_name: str = 'loss_edge') -> None:
        super().__init__(loss_weight, loss_name)
        if pos_weight is not None and not 0.0 <= pos_weight <= 1.0:
            raise ValueError(f'EdgeLoss: pos_weight must be in [0, 1], got '
                             f'{pos_weight}')
        self.pos_weight = pos_weight
        self.ignore_index = ignore_index

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes(type(self).__name__, pred, target)
        valid = target != self.ignore_index
        pos = (target == 1) & valid
        if not valid.any():
            return pred.sum() * 0.0
        if self.pos_weight is None:
            beta = 1.0 - pos.sum().float() / valid.sum().float()
        else:
            beta = torch.tensor(self.pos_weight, device=pred.device)
        weight = torch.where(pos, beta, 1.0 - beta) * valid
        bce = F.binary_cross_entropy_with_logits(
            pred, pos.to(pred.dtype), reduction='none')
        return self.loss_weight * (bce * weight).sum() / valid.sum()


@MODELS.register_module()
class OffsetLoss(_DenseLoss):
    """L1 (or MSE) regression of each pixel's offset to its instance centre.

    The paper's instance segmentation proxy (after Kendall et al.): targets
    are ``(dx, dy)`` in pixels, NaN off instances; the mean runs over the
    valid elements.

    Args:
        criterion: ``'l1'`` or ``'mse'``.
        loss_weight: Weight of the loss.
        loss_name: Key of the loss in the loss dict.
    """

    def __init__(self, criterion: str = 'l1', loss_weight: float = 1.0,
                 loss_name: str = 'loss_offset') -> None:
        super().__init__(loss_weight, loss_name)
        if criterion not in CRITERIA:
            raise ValueError(f'OffsetLoss: criterion must be one of '
                             f'{CRITERIA}, got {criterion!r}')
        self.criterion = criterion

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes(type(self).__name__, pred, target)
        valid = torch.isfinite(target)
        diff = pred - torch.where(valid, target, torch.zeros_like(target))
        err = diff.abs() if self.criterion == 'l1' else diff.pow(2)
        return self.loss_weight * _masked_mean(err, valid, pred)
