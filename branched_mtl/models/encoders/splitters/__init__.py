"""Block splitters of the stock backbones, registered in
:data:`branched_mtl.registry.BLOCK_SPLITTERS` on import.

One module per backbone family; each registers a function
``fn(backbone, granularity) -> List[BackboneBlock]`` for the backbone
classes it splits (see docs/backbones.md "Adding a backbone").
"""
from . import cnn, convnext, mobilenet, tokens, vit  # noqa: F401
from .tokens import map_to_tokens, tokens_to_map

__all__ = ['tokens_to_map', 'map_to_tokens']
