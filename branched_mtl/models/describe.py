"""What the tree builder and reports need to know about a model config."""
import copy
import os
from typing import Any, Dict, Optional, Sequence, Union

from branched_mtl.registry import build_stock
from branched_mtl.tree.problem import ModelBlocks
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


ConfigLike = Union[str, os.PathLike, Any]  # a path or an mmengine Config


def _config(config: ConfigLike):
    from mmengine.config import Config
    if isinstance(config, (str, os.PathLike)):
        return Config.fromfile(os.fspath(config))
    return config


def _model_cfg(cfg) -> dict:
    return cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)


def describe_tree_blocks(config: ConfigLike,
                         flops: bool = False,
                         input_shape: Optional[Sequence[int]] = None
                         ) -> ModelBlocks:
    """The blocks of a config's model, as the tree builder
    (:func:`branched_mtl.tree.builder.build_tree`) takes them.

    Args:
        config: The config's path, or the loaded ``mmengine`` Config.
        flops: Also count each block's and the heads' FLOPs per image
            (:func:`add_block_flops`); implied by ``input_shape``.
        input_shape: (C, H, W) of one image for the FLOPs (default: the
            config's first test image).

    Returns:
        The :class:`~branched_mtl.tree.problem.ModelBlocks`.

    Raises:
        ValueError: as :func:`add_block_flops`.
        RuntimeError: as :func:`add_block_flops`.
    """
    cfg = _config(config)
    blocks = ModelBlocks.from_mapping(describe_model(_model_cfg(cfg)))
    if flops or input_shape is not None:
        blocks = add_block_flops(blocks, cfg, input_shape)
    return blocks


def add_block_flops(blocks: ModelBlocks,
                    config: ConfigLike,
                    input_shape: Optional[Sequence[int]] = None
                    ) -> ModelBlocks:
    """``blocks`` with the FLOPs per image of one copy of each block and of
    the heads (mmengine's analysis of the all-shared network).

    Args:
        blocks: The config's blocks (:func:`describe_tree_blocks`).
        config: The config's path, or the loaded ``mmengine`` Config.
        input_shape: (C, H, W) of one image after the data preprocessor
            (default: the config's first test image).

    Returns:
        A copy of ``blocks`` with ``block_flops``, ``head_flops`` and
        ``input_shape``.

    Raises:
        ValueError: on a bad ``input_shape``, or when none is given and the
            config's test image cannot be read.
        RuntimeError: when the model cannot run an image of that shape (the
            forward pass's error).
    """
    from branched_mtl.tree.flops import (config_input_shape,
                                         parse_input_shape)
    cfg = _config(config)
    shape = parse_input_shape(input_shape) if input_shape is not None \
        else config_input_shape(cfg)
    info = tree_flops_info(_model_cfg(cfg), shape)
    if list(info['block_names']) != list(blocks.block_names):
        raise ValueError(
            f'the model\'s blocks {info["block_names"]} are not those '
            f'described {blocks.block_names}: describe this config')
    return blocks.with_flops(info['block_flops'], info['head_flops'],
                             info['input_shape'])


def tree_flops_info(model_cfg: dict,
                    input_shape: Sequence[int]) -> Dict[str, Any]:
    """Per-block and head FLOPs of a ``BranchedMultiTaskModel`` config.

    Builds the all-shared network (whatever tree the config holds) and
    traces one image of ``input_shape`` through it.

    Args:
        model_cfg: The config's ``model`` dict.
        input_shape: (C, H, W) of one image after the data preprocessor.

    Returns:
        dict with ``block_names``, ``block_flops`` (one copy of each block),
        ``head_flops`` (every task's neck and head together), ``total`` (the
        all-shared network) and ``input_shape``.
    """
    import torch
    from mmengine.analysis import FlopAnalyzer

    from branched_mtl.registry import MODELS
    from branched_mtl.tree.flops import parse_input_shape
    from branched_mtl.utils.console import quiet_logger
    shape = parse_input_shape(input_shape)
    cfg = copy.deepcopy(dict(model_cfg))
    cfg['encoder'] = dict(cfg['encoder'], branches=None)
    model = MODELS.build(cfg)
    model.eval()
    # the analyzer warns about every op it does not count (batch norm,
    # pooling): the totals are what mmengine's complexity analysis gives
    with quiet_logger(), torch.no_grad():
        analyzer = FlopAnalyzer(model, (torch.zeros(1, *shape), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        total = int(analyzer.total())
        encoder = model.encoder
        blocks = [int(analyzer.total(f'encoder.{encoder.block_path(b)}'))
                  for b in range(encoder.num_blocks)]
    return dict(block_names=list(model.encoder.block_names),
                block_flops=blocks, head_flops=total - sum(blocks),
                total=total, input_shape=list(shape))
