"""Split a stock backbone into its sharable blocks.

A block is a sub-module of the stock backbone that runs on the previous
block's output; chaining the blocks reproduces the backbone's forward. The
stock modules themselves are reused (no copy of their code).
"""
from typing import List, NamedTuple, Optional

import torch.nn as nn

GRANULARITIES = ('stage', 'layer')


class BackboneBlock(NamedTuple):
    """One sharable block.

    Attributes:
        name: e.g. ``stem``, ``layer3`` or ``stage2.conv1``.
        module: The stock sub-module(s), chained.
        out_index: Position of this block's output in the stock backbone's
            feature tuple, or None when the backbone does not emit it.
    """
    name: str
    module: nn.Module
    out_index: Optional[int]


def _is_resnet(backbone: nn.Module) -> bool:
    # mmpretrain's and mmseg's ResNet families share this structure
    return hasattr(backbone, 'res_layers') and hasattr(backbone, 'maxpool')


def _is_vgg(backbone: nn.Module) -> bool:
    return hasattr(backbone, 'range_sub_modules') and hasattr(
        backbone, 'stage_blocks')


def _out_position(stage: int, out_indices) -> Optional[int]:
    out_indices = sorted(int(i) for i in out_indices)
    return out_indices.index(stage) if stage in out_indices else None


def _resnet_blocks(backbone: nn.Module) -> List[BackboneBlock]:
    if getattr(backbone, 'deep_stem', False):
        stem = nn.Sequential(backbone.stem, backbone.maxpool)
    else:
        stem = nn.Sequential(backbone.conv1,
                             getattr(backbone, backbone.norm1_name),
                             backbone.relu, backbone.maxpool)
    blocks = [BackboneBlock('stem', stem, None)]
    for i, name in enumerate(backbone.res_layers):
        blocks.append(
            BackboneBlock(name, getattr(backbone, name),
                          _out_position(i, backbone.out_indices)))
    return blocks


def _vgg_blocks(backbone: nn.Module, granularity: str) -> List[BackboneBlock]:
    if getattr(backbone, 'num_classes', -1) > 0:
        raise ValueError(
            'VGG with a classifier (num_classes > 0) cannot be split into '
            'sharable blocks; set num_classes=-1 and put the classifier in '
            'the task heads')
    layers = getattr(backbone, backbone.module_name)
    blocks = []
    for s, (start, end) in enumerate(backbone.range_sub_modules):
        out = _out_position(s, backbone.out_indices)
        if granularity == 'stage':
            blocks.append(
                BackboneBlock(f'stage{s}',
                              nn.Sequential(*[layers[j] for j in range(start, end)]),
                              out))
            continue
        # One block per conv layer; a stage's pooling goes with its last conv
        convs = [j for j in range(start, end)
                 if not isinstance(layers[j], nn.MaxPool2d)]
        for k, j in enumerate(convs):
            stop = convs[k + 1] if k + 1 < len(convs) else end
            blocks.append(
                BackboneBlock(f'stage{s}.conv{k}',
                              nn.Sequential(*[layers[i] for i in range(j, stop)]),
                              out if k + 1 == len(convs) else None))
    return blocks


def split_backbone(backbone: nn.Module,
                   granularity: str = 'stage') -> List[BackboneBlock]:
    """Split a stock backbone into sharable blocks.

    Args:
        backbone: A built ResNet family (mmpretrain ResNet / ResNetV1c /
            ResNetV1d, mmseg ResNet / ResNetV1c ...) or mmpretrain VGG.
        granularity: ``'stage'`` (ResNet: stem, layer1..layer4; VGG: one block
            per stage) or ``'layer'`` (VGG: one block per conv layer, as for
            the paper's CelebA thin VGG-16).

    Returns:
        The blocks, input to output.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f'granularity must be one of {GRANULARITIES}, '
                         f'got {granularity!r}')
    if _is_resnet(backbone):
        if granularity != 'stage':
            raise ValueError(
                f'{type(backbone).__name__} supports granularity="stage" '
                'only (stem, layer1..layer4)')
        return _resnet_blocks(backbone)
    if _is_vgg(backbone):
        return _vgg_blocks(backbone, granularity)
    raise TypeError(
        f'BranchedEncoder cannot split {type(backbone).__module__}.'
        f'{type(backbone).__name__}: supported are the ResNet family '
        '(mmpretrain / mmseg) and mmpretrain VGG. See README "Adding a '
        'backbone".')
