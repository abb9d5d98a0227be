"""What the tree builder and reports need to know about a model config."""
from typing import Any, Dict

from branched_mtl.registry import build_stock
from .encoders import describe_blocks


def describe_model(model_cfg: dict) -> Dict[str, Any]:
    """Tasks and per-block metadata of a ``BranchedMultiTaskModel`` config.

    Builds the stock backbone once and the heads, never the tree.

    Args:
        model_cfg: The config's ``model`` dict.

    Returns:
        dict with ``tasks``, ``block_names``, ``block_params`` (parameters of
        one copy of each block), ``pools`` (p_l per block) and
        ``head_params`` (all task heads together).
    """
    encoder = dict(model_cfg['encoder'])
    blocks = describe_blocks(encoder['backbone'],
                             encoder.get('granularity', 'stage'))
    head = build_stock(model_cfg['head'])
    return dict(
        tasks=list(encoder['tasks']),
        block_names=[b.name for b in blocks],
        block_params=[b.num_params for b in blocks],
        pools=[b.pools for b in blocks],
        head_params=sum(p.numel() for p in head.parameters()))
