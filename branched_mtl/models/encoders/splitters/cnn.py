"""Block splitters of the ResNet family, RegNet and VGG.

Their blocks are the stock sub-modules as they are: a block's output is both
the next block's input and what the stock backbone emits there.
"""
from typing import List

import torch.nn as nn

from branched_mtl.registry import register_splitter
from ..backbone_blocks import (BackboneBlock, Granularity, check_granularity,
                               out_position)

_MMPRETRAIN = 'mmpretrain.models.backbones'


def _res_layers(backbone: nn.Module, stem: nn.Module,
                granularity: str) -> List[BackboneBlock]:
    """``stem``, then each res layer (``stage``) or each of its residual
    blocks (``layer``: ``layer3.block1``; the emitted output is the res
    layer's last block's)."""
    blocks = [BackboneBlock('stem', stem, None)]
    for i, name in enumerate(backbone.res_layers):
        res_layer = getattr(backbone, name)
        out = out_position(i, backbone.out_indices)
        if granularity == 'stage':
            blocks.append(BackboneBlock(name, res_layer, out))
            continue
        last = len(res_layer) - 1
        blocks.extend(
            BackboneBlock(f'{name}.block{j}', block,
                          out if j == last else None)
            for j, block in enumerate(res_layer))
    return blocks


@register_splitter(f'{_MMPRETRAIN}.resnet.ResNet',
                   'mmseg.models.backbones.resnet.ResNet')
def resnet_blocks(backbone: nn.Module,
                  granularity: Granularity) -> List[BackboneBlock]:
    """The ResNet family (mmpretrain ResNet, ResNetV1c / V1d, ResNeXt,
    SEResNet, Res2Net ...; mmseg ResNet, ResNetV1c ...; dilated or not):
    ``stem`` (with the max pool), ``layer1`` .. ``layer4``, or their
    residual blocks (``layer``)."""
    granularity = check_granularity(backbone, granularity)
    if getattr(backbone, 'deep_stem', False):
        stem = nn.Sequential(backbone.stem, backbone.maxpool)
    else:
        stem = nn.Sequential(backbone.conv1,
                             getattr(backbone, backbone.norm1_name),
                             backbone.relu, backbone.maxpool)
    return _res_layers(backbone, stem, granularity)


@register_splitter(f'{_MMPRETRAIN}.regnet.RegNet')
def regnet_blocks(backbone: nn.Module,
                  granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain RegNet: ``stem`` (one stride-2 conv, no max pool),
    ``layer1`` .. ``layer4``, or their residual blocks (``layer``)."""
    granularity = check_granularity(backbone, granularity)
    stem = nn.Sequential(backbone.conv1, backbone.norm1, backbone.relu)
    return _res_layers(backbone, stem, granularity)


@register_splitter(f'{_MMPRETRAIN}.vgg.VGG')
def vgg_blocks(backbone: nn.Module,
               granularity: Granularity) -> List[BackboneBlock]:
    """mmpretrain VGG (``num_classes=-1``): one block per stage, or per conv
    layer (``layer``, as for the paper's CelebA thin VGG-16; a stage's
    pooling goes with its last conv)."""
    granularity = check_granularity(backbone, granularity)
    if getattr(backbone, 'num_classes', -1) > 0:
        raise ValueError(
            'VGG with a classifier (num_classes > 0) cannot be split into '
            'sharable blocks; set num_classes=-1 and put the classifier in '
            'the task heads')
    layers = getattr(backbone, backbone.module_name)
    blocks = []
    for s, (start, end) in enumerate(backbone.range_sub_modules):
        out = out_position(s, backbone.out_indices)
        if granularity == 'stage':
            blocks.append(
                BackboneBlock(
                    f'stage{s}',
                    nn.Sequential(*[layers[j] for j in range(start, end)]),
                    out))
            continue
        convs = [j for j in range(start, end)
                 if not isinstance(layers[j], nn.MaxPool2d)]
        for k, j in enumerate(convs):
            stop = convs[k + 1] if k + 1 < len(convs) else end
            blocks.append(
                BackboneBlock(
                    f'stage{s}.conv{k}',
                    nn.Sequential(*[layers[i] for i in range(j, stop)]),
                    out if k + 1 == len(convs) else None))
    return blocks
