"""Block splitter of ConvNeXt (mmpretrain, v1 and v2).

A block is a stage's downsampling layer and ConvNeXt blocks; its output (the
next stage's input) is the raw map, and where the stage is emitted the stock
backbone norms it (``norm{i}``, optionally after global average pooling),
which the block applies in ``stock_feature`` only.
"""
from typing import List, Optional, Sequence

import torch.nn as nn
from torch import Tensor

from branched_mtl.registry import register_splitter
from ..backbone_blocks import (BackboneBlock, Granularity, check_granularity,
                               out_position)

__all__ = ['ConvNeXtBlock', 'convnext_blocks']


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's downsampling layer (if any) and blocks, chained.

    Args:
        blocks: Stock ``ConvNeXtBlock`` modules (or the stem's layers).
        downsample: The stock downsampling layer run first, or None.
        norm: The stock output norm (``norm{i}``) when the stage is emitted.
        gap_before_final_norm: The stock option: average-pool before the
            output norm and emit ``(N, C)``.
    """

    def __init__(self,
                 blocks: Sequence[nn.Module],
                 downsample: Optional[nn.Module] = None,
                 norm: Optional[nn.Module] = None,
                 gap_before_final_norm: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm
        self.gap_before_final_norm = gap_before_final_norm

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)

    def stock_feature(self, y: Tensor) -> Tensor:
        if self.norm is None:
            return y
        if self.gap_before_final_norm:
            return self.norm(y.mean([-2, -1], keepdim=True)).flatten(1)
        return self.norm(y)


@register_splitter('mmpretrain.models.backbones.convnext.ConvNeXt')
def convnext_blocks(backbone: nn.Module,
                    granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain ConvNeXt (v1 and v2): ``stem`` (the patchify layer), then
    per stage its downsampling layer and blocks (``stage``), or one block
    per ConvNeXt block (``layer``; the downsampling layer goes with the
    stage's first block)."""
    granularity = check_granularity(backbone, granularity)
    out_indices = backbone.out_indices
    stem = backbone.downsample_layers[0]
    blocks = [BackboneBlock('stem', ConvNeXtBlock([], downsample=stem), None)]
    for i, stage in enumerate(backbone.stages):
        down = backbone.downsample_layers[i] if i > 0 else None
        out = out_position(i, out_indices)
        norm = getattr(backbone, f'norm{i}') if out is not None else None
        gap = bool(backbone.gap_before_final_norm)
        if granularity == 'stage':
            blocks.append(
                BackboneBlock(f'stage{i}',
                              ConvNeXtBlock(list(stage), down, norm, gap),
                              out))
            continue
        last = len(stage) - 1
        for j, block in enumerate(stage):
            blocks.append(
                BackboneBlock(
                    f'stage{i}.block{j}',
                    ConvNeXtBlock([block], down if j == 0 else None,
                                  norm if j == last else None, gap),
                    out if j == last else None))
    return blocks
