from . import splitters  # noqa: F401  (registers the stock block splitters)
from .backbone_blocks import BackboneBlock, block_feature, split_backbone
from .branched_encoder import (BlockInfo, BranchedEncoder, describe_blocks,
                               init_block_copies)

__all__ = [
    'BranchedEncoder', 'BlockInfo', 'BackboneBlock', 'split_backbone',
    'block_feature', 'describe_blocks', 'init_block_copies'
]
