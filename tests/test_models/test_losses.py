import math

import pytest
import torch

from branched_mtl.models.losses import (DepthLoss, EdgeLoss, NormalLoss,
                                        OffsetLoss)


def _t(values):
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, -1)


def test_depth_loss_l1_and_mse_skip_invalid_pixels():
    pred = _t([1.0, 2.0, 5.0, 7.0])
    target = _t([2.0, 2.0, 0.0, math.nan])  # 0 and NaN are invalid
    assert DepthLoss('l1')(pred, target).item() == pytest.approx(0.5)
    assert DepthLoss('mse', loss_weight=2.0)(pred, target).item() == \
        pytest.approx(1.0)


def test_depth_loss_without_valid_pixels_is_zero_with_gradient():
    pred = _t([1.0, 2.0]).requires_grad_()
    loss = DepthLoss()(pred, torch.zeros_like(pred))
    loss.backward()
    assert loss.item() == 0 and pred.grad is not None


def test_normal_loss_cosine_and_l1():
    pred = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                         [1.0, 1.0, 1.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    # pixel 0: cos 1 -> 0; pixel 1: cos 0 -> 1; pixel 2 invalid (zero)
    assert NormalLoss('cosine')(pred, target).item() == pytest.approx(0.5)
    # L1 between unit vectors: 0 and |(-1, 1, 0)|_1 = 2
    assert NormalLoss('l1')(pred, target).item() == pytest.approx(1.0)


def test_edge_loss_balanced_and_fixed_weights():
    logits = torch.zeros(1, 1, 1, 4)  # p = 0.5 everywhere: bce = ln 2
    target = torch.tensor([1, 0, 0, 255]).reshape(1, 1, 1, 4)
    ln2 = math.log(2)
    # balanced: beta = 2/3 for the edge pixel, 1/3 for the two others
    expected = (2 / 3 + 1 / 3 + 1 / 3) * ln2 / 3
    assert EdgeLoss()(logits, target).item() == pytest.approx(expected)
    expected = (0.9 + 0.1 + 0.1) * ln2 / 3
    assert EdgeLoss(pos_weight=0.9)(logits, target).item() == \
        pytest.approx(expected)
    with pytest.raises(ValueError):
        EdgeLoss(pos_weight=2)


def test_offset_loss_on_instance_pixels_only():
    pred = torch.tensor([[1.0, 5.0], [0.0, 9.0]]).reshape(1, 2, 1, 2)
    target = torch.tensor([[3.0, math.nan], [1.0, math.nan]]).reshape(
        1, 2, 1, 2)
    # valid elements: |1-3| and |0-1|
    assert OffsetLoss()(pred, target).item() == pytest.approx(1.5)
    assert OffsetLoss('mse')(pred, target).item() == pytest.approx(2.5)


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match='must both be'):
        DepthLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 2))
