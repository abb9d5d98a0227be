"""Learning to Branch (Guo, Lee, Ulbricht, ICML 2020) on branched_mtl.

Importing this package registers ``LTBSupergraph`` (model) and
``LTBSearchLoop`` (loop) in the ``branched_mtl`` scope, and the method
``ltb`` (``branched_mtl.registry.METHODS``: ``tools/branch.py --affinity
ltb``, ``compare_methods.py --methods ltb``); configs name it in
``custom_imports``.
"""
from .derive import (argmax_paths, derive_tree, paths_to_branches,
                     tree_log_prob, tree_size)
from .method import LearningToBranch
from .search_loop import LTBSearchLoop, temperature
from .size import encoder_sizes
from .supergraph import ARCH_KEY, LTBSupergraph, path_probabilities

__all__ = [
    'LTBSupergraph', 'LTBSearchLoop', 'LearningToBranch', 'ARCH_KEY',
    'path_probabilities', 'temperature', 'argmax_paths', 'derive_tree',
    'paths_to_branches', 'tree_log_prob', 'tree_size', 'encoder_sizes'
]
