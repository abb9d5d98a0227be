"""AdaShare as a project on branched_mtl: importing this registers the
``PolicyEncoder`` in the ``branched_mtl`` scope and the method ``adashare``
(``branched_mtl.registry.METHODS``) (configs name it through
``custom_imports=dict(imports=['branched_mtl', 'projects.adashare.adashare'])``).
"""
from .losses import sharing_loss, sharing_weights, sparsity_loss
from .method import AdaShare
from .policy_encoder import PolicyEncoder, SkippedBlock, residual_blocks
from .search import (AdaShareSearch, measure_size, policy_encoder_config,
                     render_policy_config, search_settings)

__all__ = [
    'AdaShare', 'PolicyEncoder', 'SkippedBlock', 'residual_blocks', 'sparsity_loss',
    'sharing_loss', 'sharing_weights', 'AdaShareSearch', 'measure_size',
    'policy_encoder_config', 'render_policy_config', 'search_settings'
]
