"""Sizes of the trees the search chooses among: parameters and FLOPs.

A tree's size is linear in its copies: the all-shared model plus, per
block, (groups - 1) x one copy of that block. The per-block and head FLOPs
are branched_mtl's (:func:`branched_mtl.models.describe.tree_flops_info`: one
mmengine complexity analysis of the all-shared model), so the search's
FLOPs are those the package's tree builder and reports count.
"""
from typing import Dict, Sequence

from mmengine.registry import DefaultScope

from branched_mtl.models import describe_model
from branched_mtl.tree import all_shared, count_tree_params, fully_separate
from branched_mtl.models.describe import tree_flops_info


def encoder_sizes(model_cfg: dict, shape: Sequence[int]) -> Dict[str, object]:
    """Per-block and fixed sizes of a ``BranchedMultiTaskModel`` config.

    Args:
        model_cfg: The config's ``model`` (its encoder a ``BranchedEncoder``).
        shape: (C, H, W) of one input image.

    Returns:
        dict with ``block_names``, ``params`` (per block), ``head_params``,
        ``flops`` (per block), ``head_flops`` (everything but the encoder's
        blocks in the all-shared model), and the all-shared and fully
        separate sizes in both units.
    """
    info = describe_model(model_cfg)
    tasks, nb = info['tasks'], len(info['block_names'])
    # nested bare names (a data preprocessor of ours) resolve in our scope,
    # as under the Runner of a config with default_scope='branched_mtl'
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        counted = tree_flops_info(model_cfg, shape)
    flops = [float(f) for f in counted['block_flops']]
    head_flops = float(counted['head_flops'])
    return dict(
        tasks=tasks, block_names=info['block_names'],
        params=list(info['block_params']), head_params=info['head_params'],
        flops=flops, head_flops=head_flops,
        shared_params=count_tree_params(all_shared(tasks, nb),
                                        info['block_params'],
                                        info['head_params']),
        separate_params=count_tree_params(fully_separate(tasks, nb),
                                          info['block_params'],
                                          info['head_params']),
        shared_flops=float(counted['total']),
        separate_flops=head_flops + len(tasks) * sum(flops))
