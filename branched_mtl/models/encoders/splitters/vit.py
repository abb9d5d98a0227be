"""Block splitters of the plain Vision Transformers: mmpretrain
VisionTransformer (every arch, the DeiT sizes included) and
DistilledVisionTransformer (DeiT with a distillation token), mmseg
VisionTransformer.

The ``stem`` holds the patch embedding, the class (and distillation) token,
the position embedding (resized to the input's grid as the stock backbone
does), its dropout and the pre-norm; each further block is a run of
consecutive layers. By default a run ends at every emitted layer (``stage``),
or at every layer (``layer``); the split points (layer indices given as the
granularity) end runs where the user wants, e.g. ``(3, 7)`` for
``layer0-3``, ``layer4-7``, ``layer8-11``. What the stock backbone emits at
a layer (the patch map, the class token, the raw sequence, the pooled and
normed patches) is applied to the block's output in ``stock_feature`` only;
the full token sequence flows on to the next block, laid out as the patch
grid with the extra tokens in rows on top (:func:`tokens_to_map`).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from branched_mtl.registry import register_splitter
from ..backbone_blocks import (BackboneBlock, Granularity, check_granularity,
                               out_position, split_points)
from .tokens import extra_rows, map_to_tokens, tokens_to_map

__all__ = [
    'ViTStem', 'SegViTStem', 'ViTFeature', 'ViTLayers', 'vit_blocks',
    'distilled_vit_blocks', 'seg_vit_blocks'
]


class ViTStem(nn.Module):
    """mmpretrain ViT: patch embedding, class (and distillation) token,
    position embedding, dropout and ``pre_norm``.

    Args:
        patch_embed, cls_token, pos_embed, drop_after_pos, pre_norm: The
            stock modules and parameters (``cls_token`` None without one,
            ``pre_norm`` None where the stock forward skips it: DeiT).
        patch_resolution: The grid the position embedding was made for.
        interpolate_mode: How it is resized to another grid.
        feature: How :meth:`stock_feature` formats the output, see
            :class:`ViTLayers`.
        dist_token: DeiT's distillation token, after the class token.
    """

    def __init__(self, patch_embed: nn.Module,
                 cls_token: Optional[nn.Parameter], pos_embed: nn.Parameter,
                 drop_after_pos: nn.Module, pre_norm: nn.Module,
                 patch_resolution: Tuple[int, int], interpolate_mode: str,
                 feature: 'ViTFeature',
                 dist_token: Optional[nn.Parameter] = None) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.cls_token = cls_token
        self.dist_token = dist_token
        self.pos_embed = pos_embed
        self.drop_after_pos = drop_after_pos
        self.pre_norm = pre_norm
        self.patch_resolution = tuple(patch_resolution)
        self.interpolate_mode = interpolate_mode
        self.feature = feature

    @property
    def num_extra_tokens(self) -> int:
        return sum(t is not None for t in (self.cls_token, self.dist_token))

    def forward(self, x: Tensor) -> Tensor:
        x, hw = self.patch_embed(x)
        extra = [t.expand(x.shape[0], -1, -1)
                 for t in (self.cls_token, self.dist_token) if t is not None]
        if extra:
            x = torch.cat(extra + [x], dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            hw,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        return tokens_to_map(x, hw, self.num_extra_tokens)

    def stock_feature(self, y: Tensor) -> Tensor:
        return self.feature(y)


class SegViTStem(nn.Module):
    """mmseg ViT: patch embedding, class token, position embedding (resized
    to the input's grid as mmseg does), dropout and ``pre_norm``.

    Args:
        patch_embed, cls_token, pos_embed, drop_after_pos: The stock modules
            and parameters.
        pre_ln: The stock ``pre_norm`` layer, or None.
        pos_shape: The grid the position embedding was made for.
        interpolate_mode: How it is resized to another grid.
        with_cls_token: The stock option: keep the class token in the
            sequence (otherwise it is dropped after the position embedding).
    """

    def __init__(self, patch_embed: nn.Module, cls_token: nn.Parameter,
                 pos_embed: nn.Parameter, drop_after_pos: nn.Module,
                 pre_ln: Optional[nn.Module], pos_shape: Tuple[int, int],
                 interpolate_mode: str, with_cls_token: bool) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.cls_token = cls_token
        self.pos_embed = pos_embed
        self.drop_after_pos = drop_after_pos
        self.pre_ln = pre_ln
        self.pos_shape = tuple(pos_shape)
        self.interpolate_mode = interpolate_mode
        self.with_cls_token = with_cls_token
        self.feature = ViTFeature(int(with_cls_token), 'featmap')
        # mmseg's own resizing (a static method; mmseg is imported late)
        from mmseg.models.backbones.vit import VisionTransformer
        self._resize_pos_embed = VisionTransformer.resize_pos_embed

    def forward(self, x: Tensor) -> Tensor:
        x, hw = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        pos = self.pos_embed
        if x.shape[1] != pos.shape[1]:
            pos = self._resize_pos_embed(pos, hw, self.pos_shape,
                                         self.interpolate_mode)
        x = self.drop_after_pos(x + pos)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_ln is not None:
            x = self.pre_ln(x)
        return tokens_to_map(x, hw, int(self.with_cls_token))

    def stock_feature(self, y: Tensor) -> Tensor:
        return self.feature(y)


class ViTFeature(nn.Module):
    """What a ViT emits from the token map of one of its layers.

    Args:
        num_extra: Leading non-patch tokens (class token).
        out_type: mmpretrain's ``out_type``: ``'featmap'`` (the patch grid,
            also mmseg's output), ``'cls_token'``, ``'raw'`` (the token
            sequence) or ``'avg_featmap'`` (the patches' mean, normed by
            ``ln2``).
        ln2: The stock ``ln2`` for ``'avg_featmap'``.
        distilled: DeiT's ``'cls_token'`` output: the class and the
            distillation tokens, a pair.
    """

    def __init__(self, num_extra: int, out_type: str,
                 ln2: Optional[nn.Module] = None,
                 distilled: bool = False) -> None:
        super().__init__()
        self.num_extra = num_extra
        self.out_type = out_type
        self.ln2 = ln2
        self.distilled = distilled

    def forward(self, y: Tensor) -> Tensor:
        rows = extra_rows(self.num_extra, y.shape[-1])
        if self.out_type == 'featmap':
            return y[:, :, rows:]
        tokens, _ = map_to_tokens(y, self.num_extra)
        if self.out_type == 'raw':
            return tokens
        if self.out_type == 'cls_token':
            return (tokens[:, 0], tokens[:, 1]) if self.distilled \
                else tokens[:, 0]
        return self.ln2(tokens[:, self.num_extra:].mean(dim=1))


class ViTLayers(nn.Module):
    """Consecutive ViT layers (and the final norm after the last layer).

    Args:
        layers: Stock transformer layers, called as ``layer(tokens)``.
        num_extra: Leading non-patch tokens (class token).
        final_norm: The stock final norm when these layers end the backbone
            and it has one.
        feature: Formats the stock feature; its parameters (``ln2``) are
            this block's when it is an emitted one.
    """

    def __init__(self, layers: Sequence[nn.Module], num_extra: int,
                 final_norm: Optional[nn.Module],
                 feature: ViTFeature) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.num_extra = num_extra
        self.final_norm = final_norm
        self.feature = feature

    def forward(self, x: Tensor) -> Tensor:
        x, hw = map_to_tokens(x, self.num_extra)
        for layer in self.layers:
            x = layer(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return tokens_to_map(x, hw, self.num_extra)

    def stock_feature(self, y: Tensor) -> Tensor:
        return self.feature(y)


def _vit_spans(num_layers: int, out_layers: Sequence[int],
               granularity: Granularity,
               backbone: str) -> List[Tuple[int, int]]:
    """Layer spans ``(first, last)``: one per layer, or ending at each
    emitted layer, split point and the last layer."""
    if granularity == 'layer':
        return [(i, i) for i in range(num_layers)]
    points = () if granularity == 'stage' else split_points(
        granularity, num_layers, backbone)
    ends = sorted({int(i) for i in out_layers if 0 <= int(i) < num_layers}
                  | {num_layers - 1} | set(points))
    return [(0 if k == 0 else ends[k - 1] + 1, e) for k, e in enumerate(ends)]


def _span_name(first: int, last: int) -> str:
    return f'layer{first}' if first == last else f'layer{first}-{last}'


def _vit_layer_blocks(backbone: nn.Module, out_layers: Sequence[int],
                      granularity: Granularity, num_extra: int,
                      final_norm: Optional[nn.Module], out_type: str,
                      ln2: Optional[nn.Module], first_out: int,
                      distilled: bool = False) -> List[BackboneBlock]:
    layers = list(backbone.layers)
    plain = ViTFeature(num_extra, 'featmap')
    blocks = []
    for first, last in _vit_spans(len(layers), out_layers, granularity,
                                  type(backbone).__name__):
        out = out_position(last, out_layers)
        emitted = out is not None
        feature = ViTFeature(num_extra, out_type, ln2,
                             distilled) if emitted else plain
        blocks.append(
            BackboneBlock(
                _span_name(first, last),
                ViTLayers(layers[first:last + 1], num_extra,
                          final_norm if last == len(layers) - 1 else None,
                          feature),
                first_out + out if emitted else None))
    return blocks


def _check(backbone: nn.Module, granularity: Granularity) -> None:
    if isinstance(granularity, str):
        check_granularity(backbone, granularity)


@register_splitter(
    'mmpretrain.models.backbones.vision_transformer.VisionTransformer')
def vit_blocks(backbone: nn.Module,
               granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain VisionTransformer: ``stem`` (patch and position
    embeddings), then one block per layer (``layer``) or the layers up to
    each emitted one (``stage``, e.g. ``layer0-3``, ``layer4-7`` ...).

    ``out_type='avg_featmap'`` norms every emitted output with one shared
    ``ln2``, which cannot be split: it needs a single ``out_indices``."""
    _check(backbone, granularity)
    out_type = backbone.out_type
    num_extra = backbone.num_extra_tokens
    ln2 = getattr(backbone, 'ln2', None) if out_type == 'avg_featmap' \
        else None
    if ln2 is not None and len(set(backbone.out_indices)) > 1:
        raise ValueError(
            "VisionTransformer with out_type='avg_featmap' norms every "
            'output with one shared ln2, which cannot be split into blocks; '
            'use a single out_indices or another out_type')
    stem = ViTStem(backbone.patch_embed, backbone.cls_token,
                   backbone.pos_embed, backbone.drop_after_pos,
                   backbone.pre_norm, backbone.patch_resolution,
                   backbone.interpolate_mode,
                   ViTFeature(num_extra, 'featmap'))
    final = backbone.ln1 if backbone.final_norm else None
    return [BackboneBlock('stem', stem, None)] + _vit_layer_blocks(
        backbone, backbone.out_indices, granularity, num_extra, final,
        out_type, ln2, 0)


@register_splitter('mmpretrain.models.backbones.deit.'
                   'DistilledVisionTransformer')
def distilled_vit_blocks(backbone: nn.Module,
                         granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain DistilledVisionTransformer (DeiT): as :func:`vit_blocks`,
    with the distillation token after the class token and no pre-norm (the
    stock forward skips it); ``out_type='cls_token'`` emits both tokens."""
    _check(backbone, granularity)
    if backbone.out_type == 'avg_featmap':
        raise ValueError(
            "DistilledVisionTransformer with out_type='avg_featmap' is not "
            'split; use featmap, cls_token or raw')
    stem = ViTStem(backbone.patch_embed, backbone.cls_token,
                   backbone.pos_embed, backbone.drop_after_pos, None,
                   backbone.patch_resolution, backbone.interpolate_mode,
                   ViTFeature(2, 'featmap'), dist_token=backbone.dist_token)
    final = backbone.ln1 if backbone.final_norm else None
    return [BackboneBlock('stem', stem, None)] + _vit_layer_blocks(
        backbone, backbone.out_indices, granularity, 2, final,
        backbone.out_type, None, 0, distilled=True)


@register_splitter('mmseg.models.backbones.vit.VisionTransformer')
def seg_vit_blocks(backbone: nn.Module,
                   granularity: Granularity) -> List[BackboneBlock]:
    """mmseg VisionTransformer, as :func:`vit_blocks`; the outputs are
    patch maps, and ``out_origin`` emits the stem's. ``output_cls_token``
    (a [map, class token] pair per output) is not supported."""
    _check(backbone, granularity)
    if backbone.output_cls_token:
        raise ValueError(
            'mmseg VisionTransformer with output_cls_token=True emits '
            '[feature map, class token] pairs, which BranchedEncoder does '
            'not split; set output_cls_token=False')
    num_extra = int(backbone.with_cls_token)
    pos_shape = (backbone.img_size[0] // backbone.patch_size,
                 backbone.img_size[1] // backbone.patch_size)
    stem = SegViTStem(backbone.patch_embed, backbone.cls_token,
                      backbone.pos_embed, backbone.drop_after_pos,
                      backbone.pre_ln if backbone.pre_norm else None,
                      pos_shape, backbone.interpolate_mode,
                      backbone.with_cls_token)
    final = backbone.norm1 if backbone.final_norm else None
    origin = bool(backbone.out_origin)
    return [BackboneBlock('stem', stem, 0 if origin else None)
            ] + _vit_layer_blocks(backbone, backbone.out_indices, granularity,
                                  num_extra, final, 'featmap', None,
                                  int(origin))
