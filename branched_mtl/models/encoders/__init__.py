from .backbone_blocks import BackboneBlock, split_backbone
from .branched_encoder import BlockInfo, BranchedEncoder, describe_blocks

__all__ = [
    'BranchedEncoder', 'BlockInfo', 'BackboneBlock', 'split_backbone',
    'describe_blocks'
]
