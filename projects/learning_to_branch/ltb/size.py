"""Sizes of the trees the search chooses among: parameters and FLOPs.

A tree's size is linear in its copies: the all-shared model plus, per
block, (groups - 1) x one copy of that block. FLOPs come from mmengine's
complexity analysis of the stock blocks and of the all-shared model.
"""
import copy
import logging
from typing import Dict, List, Sequence

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from branched_mtl.models import describe_model
from branched_mtl.models.encoders.backbone_blocks import split_backbone
from branched_mtl.registry import MODELS, build_stock
from branched_mtl.tree import all_shared, count_tree_params, fully_separate


def _flops(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    # the analyser warns about every op it does not count (pooling, BN)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        analyzer = FlopAnalyzer(module, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return float(analyzer.total())
    finally:
        logger.setLevel(level)


def block_flops(backbone: dict, shape: Sequence[int],
                granularity: str = 'stage') -> List[float]:
    """FLOPs of one copy of each block for one image of ``shape`` (C, H, W).

    Args:
        backbone: Config of the stock backbone.
        shape: Input image shape.
        granularity: As in ``BranchedEncoder``.

    Returns:
        Per block, its FLOPs on the previous block's output.
    """
    stock = build_stock(copy.deepcopy(dict(backbone)))
    stock.eval()
    x = torch.zeros(1, *shape)
    flops = []
    with torch.no_grad():
        for block in split_backbone(stock, granularity):
            flops.append(_flops(block.module, x))
            x = block.module(x)
    return flops


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
    encoder = model_cfg['encoder']
    flops = block_flops(encoder['backbone'], shape,
                        encoder.get('granularity', 'stage'))
    shared_cfg = copy.deepcopy(model_cfg)
    shared_cfg['encoder']['branches'] = None
    # nested bare names (a data preprocessor of ours) resolve in our scope,
    # as under the Runner of a config with default_scope='branched_mtl'
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        model = MODELS.build(shared_cfg)
    model.eval()
    with torch.no_grad():
        shared_flops = _flops(model, torch.zeros(1, *shape))
    head_flops = shared_flops - sum(flops)
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
        shared_flops=shared_flops,
        separate_flops=head_flops + len(tasks) * sum(flops))
