"""FLOPs of a tree without building it, from mmengine's complexity analysis.

A block's copies all see the same input, so a tree's FLOPs per image are

    sum over blocks l of (groups at l) x FLOPs(one copy of block l) + heads,

the same sum as its parameters (:func:`count_tree_params`). The per-block
and head FLOPs come from one trace of the all-shared network with mmengine's
:class:`~mmengine.analysis.FlopAnalyzer` at the config's input size, so a
tree's count equals mmengine's count of the built tree. The trace itself
is the model's business: :func:`branched_mtl.models.describe.tree_flops_info`
(this package knows trees, not encoders). mmengine counts one
multiply-add as one FLOP (as ``get_model_complexity_info`` and our reports
do).
"""
import copy
from typing import Any, Optional, Sequence, Tuple

from .branches import Branches, count_tree_params

__all__ = ['count_tree_flops', 'parse_input_shape',
           'dataset_input_shape', 'config_input_shape', 'attention_flop_jit']


def attention_flop_jit(inputs: list, outputs: list) -> int:
    """FLOPs (multiply-adds) of ``aten::scaled_dot_product_attention``:
    ``Q K^T`` and the weighted sum of ``V``, ``B L S (E + E_v)``.

    mmengine's analysis has no handle for the fused attention op and counts
    it as 0, which would leave a vision transformer's attention out of its
    blocks' FLOPs (mmpretrain's ViT calls it; Swin and MiT use matmuls).
    """
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= int(d)
    length, source = int(q[-2]), int(k[-2])
    return batch * length * source * (int(q[-1]) + int(v[-1]))


def _register_attention_flops() -> None:
    # one table for every analysis of the package (tree search, reports,
    # the projects), so that a tree's FLOPs and a built model's agree
    from mmengine.analysis import complexity_analysis
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(
        'aten::scaled_dot_product_attention', attention_flop_jit)


_register_attention_flops()


def parse_input_shape(text: Any) -> Tuple[int, ...]:
    """``'3,224,224'`` (or ``3x224x224``, a sequence) -> (C, H, W).

    Raises:
        ValueError: naming the text when it is not three whole numbers > 0.
    """
    if isinstance(text, str):
        parts = text.replace('x', ',').replace(' ', '').split(',')
    else:
        parts = list(text) if isinstance(text, (list, tuple)) else [text]
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f'input shape must be C,H,W (three whole numbers '
                         f'> 0, e.g. 3,256,512), got {text!r}')
    return shape


def dataset_input_shape(dataset_cfg: Any) -> Tuple[int, ...]:
    """(C, H, W) of the first sample of a data set config, as its pipeline
    gives it to the model (e.g. ``cfg.test_dataloader.dataset``).

    The data set is built from a copy (the config is left as it was); any
    error of building or reading it is raised as it is.
    """
    from branched_mtl.registry import DATASETS, build_stock
    dataset = build_stock(copy.deepcopy(dataset_cfg), DATASETS)
    return tuple(int(s) for s in dataset[0]['inputs'].shape)


def config_input_shape(cfg) -> Tuple[int, ...]:
    """(C, H, W) of one test image of the config, as the test pipeline
    gives it to the model (the shape the report's FLOPs are counted at).

    Raises:
        ValueError: when the test set cannot be read (give the shape).
    """
    try:
        return dataset_input_shape(cfg.test_dataloader.dataset)
    except Exception as e:  # any reason the data is not there
        raise ValueError(
            f'the input size for FLOPs is read from the config\'s first test '
            f'image, which could not be loaded ({type(e).__name__}: '
            f'{str(e)[:200]}); give it as C,H,W (--input-shape)') from None


def count_tree_flops(branches: Branches, block_flops: Sequence[int],
                     head_flops: int = 0) -> int:
    """FLOPs per image of a tree: each block's FLOPs times its copies, plus
    the heads (:func:`count_tree_params`' sum with FLOPs)."""
    return count_tree_params(branches, block_flops, head_flops)


def format_flops(value: Optional[float]) -> str:
    """1.23G / 456.7M / 12.3K FLOPs for messages."""
    if value is None:
        return '-'
    for unit, size in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= size:
            return f'{value / size:.4g}{unit}FLOPs'
    return f'{value:.0f}FLOPs'
