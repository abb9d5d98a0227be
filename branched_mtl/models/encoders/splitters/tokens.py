"""Block splitters of the hierarchical transformers: Swin (mmpretrain,
mmseg) and SegFormer's MiT (mmseg MixVisionTransformer).

Their stages run on a token sequence and its grid ``(tokens, hw_shape)``.
Between blocks the chain carries one tensor, so the tokens travel laid out
as an ``(N, C, H, W)`` map (:func:`tokens_to_map`), from which the next
block recovers both (:func:`map_to_tokens`); copies of a block can then run
on one input, be stacked and vmapped, and the resolution (p_l) is measured
as for a CNN. The same layout, with extra rows for a class token, serves the
ViT blocks (``vit.py``).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from branched_mtl.registry import register_splitter
from ..backbone_blocks import (BackboneBlock, Granularity, check_granularity,
                               out_position)

__all__ = [
    'tokens_to_map', 'map_to_tokens', 'extra_rows', 'SwinStem', 'TokenStage',
    'swin_blocks', 'mit_blocks'
]


def extra_rows(num_extra: int, width: int) -> int:
    """Rows of the map that hold ``num_extra`` leading tokens."""
    return -(-num_extra // width) if num_extra else 0


def tokens_to_map(tokens: Tensor, hw: Sequence[int],
                  num_extra: int = 0) -> Tensor:
    """``(N, extra + H*W, C)`` tokens as an ``(N, C, rows + H, W)`` map.

    The patch tokens fill the grid row by row (the stock ``featmap``
    layout); the ``num_extra`` leading tokens (class token) fill the first
    ``rows = ceil(extra / W)`` rows, the rest of those rows being zeros.

    Args:
        tokens: The token sequence.
        hw: The patch grid ``(H, W)``.
        num_extra: Leading tokens that are not patches.

    Returns:
        The map.
    """
    n, _, c = tokens.shape
    h, w = int(hw[0]), int(hw[1])
    rows = extra_rows(num_extra, w)
    pad = rows * w - num_extra
    if pad:
        tokens = torch.cat([
            tokens[:, :num_extra],
            tokens.new_zeros(n, pad, c), tokens[:, num_extra:]
        ], 1)
    return tokens.transpose(1, 2).reshape(n, c, rows + h, w)


def map_to_tokens(x: Tensor,
                  num_extra: int = 0) -> Tuple[Tensor, Tuple[int, int]]:
    """The inverse of :func:`tokens_to_map`.

    Returns:
        ``(N, extra + H*W, C)`` tokens and the patch grid ``(H, W)``.
    """
    w = x.shape[-1]
    rows = extra_rows(num_extra, w)
    tokens = x.flatten(2).transpose(1, 2)
    if rows * w != num_extra:
        tokens = torch.cat([tokens[:, :num_extra], tokens[:, rows * w:]], 1)
    return tokens, (x.shape[-2] - rows, w)


class SwinStem(nn.Module):
    """Swin's patch embedding, absolute position embedding and dropout.

    Args:
        patch_embed: The stock ``PatchEmbed``.
        drop_after_pos: The stock dropout.
        absolute_pos_embed: The stock parameter, or None.
        pos_resize: ``(patch_resolution, mode, num_extra_tokens)`` to resize
            the position embedding to the input's grid as mmpretrain does;
            None adds it as it is (mmseg).
    """

    def __init__(self,
                 patch_embed: nn.Module,
                 drop_after_pos: nn.Module,
                 absolute_pos_embed: Optional[nn.Parameter] = None,
                 pos_resize: Optional[tuple] = None) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.absolute_pos_embed = absolute_pos_embed
        self.drop_after_pos = drop_after_pos
        self.pos_resize = pos_resize

    def forward(self, x: Tensor) -> Tensor:
        x, hw = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            pos = self.absolute_pos_embed
            if self.pos_resize is not None:
                src, mode, extra = self.pos_resize
                pos = resize_pos_embed(pos, src, hw, mode, extra)
            x = x + pos
        return tokens_to_map(self.drop_after_pos(x), hw)


class TokenStage(nn.Module):
    """Transformer layers that run on a token sequence and its grid.

    The input is an ``(N, C, H, W)`` map, or the image for a block that
    starts with ``patch_embed``; the output is the map of the last layer's
    tokens.

    Args:
        layers: Stock layers called as ``layer(tokens, hw)`` (Swin blocks,
            MiT layers).
        patch_embed: Called on the input map first: ``-> (tokens, hw)``
            (MiT's overlapping patch embedding).
        merge_before: Called on the tokens first: ``(tokens, hw) ->
            (tokens, hw)`` (Swin's patch merging of the previous stage).
        merge_after: The same, after the layers (Swin with
            ``out_after_downsample``).
        norm: Applied to the tokens at the end, part of the output (MiT).
        out_norm: Applied to the tokens for the stock feature only (Swin's
            ``norm{i}``).
    """

    def __init__(self,
                 layers: Sequence[nn.Module],
                 patch_embed: Optional[nn.Module] = None,
                 merge_before: Optional[nn.Module] = None,
                 merge_after: Optional[nn.Module] = None,
                 norm: Optional[nn.Module] = None,
                 out_norm: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.merge_before = merge_before
        self.layers = nn.ModuleList(layers)
        self.merge_after = merge_after
        self.norm = norm
        self.out_norm = out_norm

    def forward(self, x: Tensor) -> Tensor:
        if self.patch_embed is not None:
            x, hw = self.patch_embed(x)
        else:
            x, hw = map_to_tokens(x)
        if self.merge_before is not None:
            x, hw = self.merge_before(x, hw)
        for layer in self.layers:
            x = layer(x, hw)
        if self.merge_after is not None:
            x, hw = self.merge_after(x, hw)
        if self.norm is not None:
            x = self.norm(x)
        return tokens_to_map(x, hw)

    def stock_feature(self, y: Tensor) -> Tensor:
        if self.out_norm is None:
            return y
        tokens, hw = map_to_tokens(y)
        return tokens_to_map(self.out_norm(tokens), hw).contiguous()


@register_splitter('mmpretrain.models.backbones.swin_transformer.'
                   'SwinTransformer', 'mmseg.models.backbones.swin.'
                   'SwinTransformer')
def swin_blocks(backbone: nn.Module,
                granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain and mmseg SwinTransformer: ``stem`` (patch embedding),
    then per stage its Swin blocks (``stage``) or each Swin block
    (``layer``). A stage's patch merging opens the next stage, where the
    stock backbone emits before merging (mmseg; mmpretrain's default), and
    closes its own stage with mmpretrain's ``out_after_downsample``."""
    granularity = check_granularity(backbone, granularity)
    after = bool(getattr(backbone, 'out_after_downsample', False))
    pos = getattr(backbone, 'absolute_pos_embed', None) \
        if backbone.use_abs_pos_embed else None
    resize = None
    if pos is not None and hasattr(backbone, 'interpolate_mode'):
        resize = (backbone.patch_resolution, backbone.interpolate_mode,
                  backbone.num_extra_tokens)
    blocks = [
        BackboneBlock(
            'stem',
            SwinStem(backbone.patch_embed, backbone.drop_after_pos, pos,
                     resize), None)
    ]
    stages = list(backbone.stages)
    for i, stage in enumerate(stages):
        before = None if after or i == 0 else stages[i - 1].downsample
        merge_after = stage.downsample if after else None
        out = out_position(i, backbone.out_indices)
        norm = getattr(backbone, f'norm{i}') if out is not None else None
        if granularity == 'stage':
            blocks.append(
                BackboneBlock(
                    f'stage{i}',
                    TokenStage(list(stage.blocks), merge_before=before,
                               merge_after=merge_after, out_norm=norm), out))
            continue
        last = len(stage.blocks) - 1
        for j, block in enumerate(stage.blocks):
            blocks.append(
                BackboneBlock(
                    f'stage{i}.block{j}',
                    TokenStage([block],
                               merge_before=before if j == 0 else None,
                               merge_after=merge_after if j == last else None,
                               out_norm=norm if j == last else None),
                    out if j == last else None))
    return blocks


@register_splitter('mmseg.models.backbones.mit.MixVisionTransformer')
def mit_blocks(backbone: nn.Module,
               granularity: Granularity) -> List[BackboneBlock]:
    """mmseg MixVisionTransformer (SegFormer's MiT): per stage its
    overlapping patch embedding, layers and norm (``stage``), or one block
    per layer (``layer``; the patch embedding goes with the first, the norm
    with the last)."""
    granularity = check_granularity(backbone, granularity)
    blocks = []
    for i, (embed, layers, norm) in enumerate(backbone.layers):
        out = out_position(i, backbone.out_indices)
        if granularity == 'stage':
            blocks.append(
                BackboneBlock(
                    f'stage{i}',
                    TokenStage(list(layers), patch_embed=embed, norm=norm),
                    out))
            continue
        last = len(layers) - 1
        for j, layer in enumerate(layers):
            blocks.append(
                BackboneBlock(
                    f'stage{i}.block{j}',
                    TokenStage([layer],
                               patch_embed=embed if j == 0 else None,
                               norm=norm if j == last else None),
                    out if j == last else None))
    return blocks
