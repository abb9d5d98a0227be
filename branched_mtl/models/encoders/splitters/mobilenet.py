"""Block splitters of MobileNetV2, MobileNetV3 and EfficientNet.

These backbones run a list of layers and emit the outputs of those in
``out_indices``; a layer is a stage of inverted residual blocks (an
``nn.Sequential``) or a single conv / block. A block is a layer
(``stage``), or one inverted residual block of a stage (``layer``).
"""
from typing import List, Sequence, Tuple

import torch.nn as nn

from branched_mtl.registry import register_splitter
from ..backbone_blocks import (BackboneBlock, Granularity, check_granularity,
                               out_position)

_MMPRETRAIN = 'mmpretrain.models.backbones'


def _layer_blocks(named_layers: Sequence[Tuple[str, nn.Module]],
                  out_indices: Sequence[int],
                  granularity: str) -> List[BackboneBlock]:
    """One block per layer, or per sub-module of a sequential layer; the
    emitted output is the last's."""
    blocks = []
    for i, (name, layer) in enumerate(named_layers):
        out = out_position(i, out_indices)
        if granularity == 'stage' or not isinstance(layer, nn.Sequential) \
                or len(layer) == 1:
            blocks.append(BackboneBlock(name, layer, out))
            continue
        last = len(layer) - 1
        for j, sub in enumerate(layer):
            blocks.append(
                BackboneBlock(f'{name}.block{j}', sub,
                              out if j == last else None))
    return blocks


@register_splitter(f'{_MMPRETRAIN}.mobilenet_v2.MobileNetV2')
def mobilenet_v2_blocks(backbone: nn.Module,
                        granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain MobileNetV2: ``stem`` (``conv1``), ``layer1`` ..
    ``layer7`` and ``conv2`` (``out_indices`` count from ``layer1``)."""
    granularity = check_granularity(backbone, granularity)
    return [BackboneBlock('stem', backbone.conv1, None)] + _layer_blocks(
        [(n, getattr(backbone, n)) for n in backbone.layers],
        backbone.out_indices, granularity)


@register_splitter(f'{_MMPRETRAIN}.mobilenet_v3.MobileNetV3')
def mobilenet_v3_blocks(backbone: nn.Module,
                        granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain MobileNetV3: ``layer0`` (the stem conv) .. ``layerN``, one
    inverted residual block each (both granularities)."""
    granularity = check_granularity(backbone, granularity)
    return _layer_blocks([(n, getattr(backbone, n)) for n in backbone.layers],
                         backbone.out_indices, granularity)


@register_splitter(f'{_MMPRETRAIN}.efficientnet.EfficientNet')
def efficientnet_blocks(backbone: nn.Module,
                        granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain EfficientNet (b and EdgeTPU archs): ``layer0`` (the stem
    conv) .. ``layerN`` (the last conv), per stage or per block."""
    granularity = check_granularity(backbone, granularity)
    return _layer_blocks(
        [(f'layer{i}', layer) for i, layer in enumerate(backbone.layers)],
        backbone.out_indices, granularity)
