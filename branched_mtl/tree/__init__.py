from .branches import (all_shared, count_tree_params, format_tree,
                       fully_separate, tree_nodes, validate_branches)

__all__ = [
    'validate_branches', 'all_shared', 'fully_separate', 'tree_nodes',
    'count_tree_params', 'format_tree'
]
