"""Split a stock backbone into its sharable blocks.

A block is a sub-module of the stock backbone that runs on the previous
block's output; chaining the blocks reproduces the backbone's forward. The
stock modules themselves are reused (no copy of their code).

A block's output is one tensor, the next block's input. Where the stock
backbone emits something else there (an output norm, a class token), the
block says how through a ``stock_feature(output)`` method, which
:func:`block_feature` applies (ConvNeXt, Swin, ViT); a CNN's blocks emit
their output as it is.

Which blocks a backbone has is decided by its *block splitter*, a function
registered in :data:`branched_mtl.registry.BLOCK_SPLITTERS` for the backbone
class (see ``splitters/`` and docs/backbones.md).
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch.nn as nn
from torch import Tensor

from branched_mtl.registry import BLOCK_SPLITTERS

GRANULARITIES = ('stage', 'layer')

# 'stage', 'layer' or split points (indices of the layers a block ends at)
Granularity = Union[str, Sequence[int]]


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


def out_position(stage: int, out_indices) -> Optional[int]:
    """Position of stage ``stage``'s output in the stock feature tuple (the
    stock backbones emit in stage order), or None when not emitted."""
    out_indices = sorted(int(i) for i in out_indices)
    return out_indices.index(stage) if stage in out_indices else None


def normalize_out_indices(out_indices, num: int, backbone: str) -> List[int]:
    """``out_indices`` with negative indices counted from the end, checked.

    Raises:
        ValueError: naming the index out of ``range(-num, num)``.
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    result = []
    for i in out_indices:
        if not -num <= int(i) < num:
            raise ValueError(f'{backbone}: out index {i} is out of range '
                             f'for its {num} stages/layers')
        result.append(int(i) % num)
    return result


def check_granularity(backbone: nn.Module, granularity: Granularity,
                      supported: Sequence[str] = GRANULARITIES) -> str:
    """The granularity a splitter without split points was given, checked.

    Raises:
        ValueError: one line naming the backbone and what it supports.
    """
    if isinstance(granularity, str) and granularity in supported:
        return granularity
    raise ValueError(
        f'{type(backbone).__name__} is split with granularity '
        f'{" or ".join(repr(g) for g in supported)}, got {granularity!r}'
        f'{" (split points are for ViTs)" if _is_points(granularity) else ""}')


def _is_points(granularity: Granularity) -> bool:
    return not isinstance(granularity, str) and isinstance(
        granularity, (list, tuple)) and all(
            isinstance(i, int) and not isinstance(i, bool)
            for i in granularity)


def split_points(granularity: Granularity, num_layers: int,
                 backbone: str) -> Tuple[int, ...]:
    """Split points given as the granularity, checked against the layers.

    Args:
        granularity: A sequence of layer indices, a block ending at each.
        num_layers: The backbone's layers.
        backbone: Its name, for errors.

    Returns:
        The sorted distinct points.

    Raises:
        ValueError: naming a point out of ``[0, num_layers)``.
    """
    for p in granularity:
        if not 0 <= p < num_layers:
            raise ValueError(f'{backbone}: split point {p} is out of range '
                             f'for its {num_layers} layers (0..'
                             f'{num_layers - 1})')
    return tuple(sorted(set(granularity)))


def block_feature(module: nn.Module, output: Tensor) -> Tensor:
    """What the stock backbone emits at a block, from the block's output.

    Args:
        module: A block's module (or a copy of it).
        output: Its output.

    Returns:
        ``module.stock_feature(output)`` where the block defines one (e.g.
        ConvNeXt's output norm, a ViT's class token), else ``output``.
    """
    feature = getattr(module, 'stock_feature', None)
    return output if feature is None else feature(output)


def frozen_parameters(backbone: nn.Module) -> List[str]:
    """Names of the parameters the stock backbone itself keeps fixed.

    ``frozen_stages`` means different things per backbone (ResNet: -1 is
    none, 0 the stem; ConvNeXt and ViT: 0 is none), so the test is what
    it does: the parameters without gradient once in training mode.

    Args:
        backbone: A built stock backbone (put in training mode).

    Returns:
        The names, empty when nothing is frozen.
    """
    backbone.train()  # ResNet and Swin freeze in train()
    return [n for n, p in backbone.named_parameters() if not p.requires_grad]


def split_backbone(backbone: nn.Module,
                   granularity: Granularity = 'stage') -> List[BackboneBlock]:
    """Split a stock backbone into sharable blocks.

    The backbone's splitter is looked up in
    :data:`branched_mtl.registry.BLOCK_SPLITTERS` along its class's MRO; see
    docs/backbones.md for the blocks of each supported backbone.

    Args:
        backbone: A built stock backbone.
        granularity: ``'stage'`` (a stage, or the layers up to an emitted
            one for a ViT), ``'layer'`` (one block per layer: VGG conv,
            ConvNeXt / Swin / MiT block, MobileNet / EfficientNet block,
            ViT layer; the ResNet family has ``'stage'`` only) or, for a
            ViT, the split points: the indices of the layers a block ends
            at, e.g. ``(3, 7)`` for ``layer0-3``, ``layer4-7`` and
            ``layer8-11`` (a block also ends at each emitted layer).

    Returns:
        The blocks, input to output.

    Raises:
        TypeError: the backbone has no splitter.
        ValueError: the granularity does not fit the backbone.
    """
    # the stock splitters are registered by the package's import of
    # ``splitters`` (encoders/__init__.py), which imports this module
    if not (granularity in GRANULARITIES if isinstance(granularity, str)
            else _is_points(granularity)):
        raise ValueError(f'granularity must be one of {GRANULARITIES} or a '
                         'sequence of split points (layer indices), got '
                         f'{granularity!r}')
    blocks = BLOCK_SPLITTERS.get(backbone)(backbone, granularity)
    if not blocks:
        raise ValueError(f'{type(backbone).__name__} was split into no '
                         'blocks')
    return blocks
