from .budget import Budget, parse_budget, parse_size_budget
from .branches import (all_shared, count_tree_params, format_tree,
                       fully_separate, tree_nodes, validate_branches)
from .config_writer import check_task_names, write_tree_config
from .cost import (all_shared_alpha, check_affinity, reorder_affinity,
                   tree_cost, tree_cost_breakdown)
from .draw import draw_tree
from .enumerate import enumerate_trees
# registers the fused attention op's FLOPs with mmengine's analysis
from .flops import attention_flop_jit
from .random_tree import (canonical_tree, count_relabellings,
                          random_trees_like, tree_rng, tree_shape)
from .search import search_tree
from .tradeoff import alpha_sweep
from .problem import (ModelBlocks, TreeProblem, check_unmeasured,
                      load_problem, read_affinity)
from .builder import SweepResult, TreeResult, build_tree, sweep_alpha
from .tag_builder import build_tag_tree

__all__ = [
    'validate_branches', 'all_shared', 'fully_separate', 'tree_nodes',
    'count_tree_params', 'format_tree', 'tree_cost', 'tree_cost_breakdown',
    'check_affinity', 'reorder_affinity', 'all_shared_alpha', 'search_tree',
    'alpha_sweep', 'random_trees_like', 'tree_rng', 'tree_shape',
    'count_relabellings', 'canonical_tree', 'parse_budget', 'check_task_names',
    'write_tree_config', 'draw_tree', 'attention_flop_jit', 'Budget',
    'parse_size_budget', 'ModelBlocks', 'TreeProblem', 'TreeResult',
    'SweepResult', 'read_affinity', 'load_problem', 'build_tree',
    'build_tag_tree', 'sweep_alpha', 'enumerate_trees', 'check_unmeasured'
]
