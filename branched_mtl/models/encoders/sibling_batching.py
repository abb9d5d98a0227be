"""Run the sibling copies of one block as one batched call.

The copies of a block in a :class:`BranchedEncoder` (one per group of the
tree at that block) have the same structure and different weights. Instead
of calling them one after another, :func:`batched_siblings` stacks their
parameters and buffers and runs the block once under ``torch.func.vmap``
(convolutions become grouped convolutions inside vmap's batching rules).

Semantics are those of the sequential calls, in training mode included:
each copy normalises with the batch statistics of its own input, the
running statistics of every copy's batch norm are updated as its own call
would (the stacked buffers are updated in place by vmap and copied back),
and each copy draws its own dropout and drop-path masks (independent, as
in its own call, though not the same random numbers).
Gradients reach each copy's own parameters through ``torch.stack``.

Whether this is faster depends on the device and the block size; see the
"Sibling branches" section of docs/benchmarks.md
(``tools/analysis/benchmark_siblings.py``).
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ['SIBLING_MODES', 'batching_obstacle', 'batched_siblings']

SIBLING_MODES = ('sequential', 'vmap')


def batching_obstacle(copies: Sequence[nn.Module]) -> Optional[str]:
    """Why these copies cannot run as one vmapped call, or None if they can.

    Args:
        copies: The copies of one block, same structure.

    Returns:
        A reason (for a log line), or None.
    """
    if len(copies) < 2:
        return 'a single copy'
    modes = [tuple(m.training for m in c.modules()) for c in copies]
    if any(m != modes[0] for m in modes[1:]):
        # e.g. one copy put in eval mode by hand: the calls would differ
        return 'copies in different train/eval modes'
    for m in copies[0].modules():
        if isinstance(m, nn.SyncBatchNorm):
            # its forward all-reduces statistics across processes, which
            # vmap cannot batch
            return 'SyncBatchNorm'
        if isinstance(m, _BatchNorm) and m.training and m.momentum is None \
                and m.track_running_stats:
            # cumulative averaging reads num_batches_tracked as a Python
            # float, impossible for a batched tensor
            return 'batch norm with momentum=None'
        if getattr(m, 'with_cp', False) and m.training:
            return 'activation checkpointing (with_cp=True)'
    return None


def _draws_random(module: nn.Module) -> bool:
    """Whether a block in its current mode draws random masks (dropout,
    mmcv's / timm's DropPath with a rate above 0)."""
    for m in module.modules():
        if not m.training:
            continue
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return True
        if type(m).__name__ == 'DropPath' and getattr(m, 'drop_prob',
                                                      0) > 0:
            return True
    return False


def batched_siblings(copies: Sequence[nn.Module],
                     inputs: Sequence[Tensor]) -> List[Tensor]:
    """``[copies[g](inputs[g]) for g]`` as one vmapped call.

    Args:
        copies: G >= 2 copies of one block (same structure and modes; see
            :func:`batching_obstacle`).
        inputs: G inputs of equal shape; the same tensor object repeated is
            passed once, unstacked.

    Returns:
        The G outputs.
    """
    first = copies[0]
    names = [n for n, _ in first.named_parameters()]
    buffer_names = [n for n, _ in first.named_buffers()]
    per_copy_params = [dict(c.named_parameters()) for c in copies]
    per_copy_buffers = [dict(c.named_buffers()) for c in copies]
    # stack (not stack_module_state's detached copies), so autograd carries
    # each slice's gradient back to that copy's own parameter
    params = {
        n: torch.stack([p[n] for p in per_copy_params])
        for n in names
    }
    buffers = {
        n: torch.stack([b[n] for b in per_copy_buffers])
        for n in buffer_names
    }

    def call(p, b, x):
        return functional_call(first, (p, b), (x, ))

    # each copy draws its own dropout / drop-path masks, as its own call
    # would (not the same numbers as the sequential calls); blocks without
    # randomness keep vmap's default, whose results equal the sequential
    # calls to the last bits
    randomness = 'different' if _draws_random(first) else 'error'
    if all(x is inputs[0] for x in inputs[1:]):
        out = vmap(call, in_dims=(0, 0, None),
                   randomness=randomness)(params, buffers, inputs[0])
    else:
        out = vmap(call, in_dims=(0, 0, 0),
                   randomness=randomness)(params, buffers,
                                          torch.stack(list(inputs)))
    if buffer_names and any(m.training for m in first.modules()):
        # batch norm updated the stacked running statistics in place;
        # each copy keeps its own, as after its own call
        with torch.no_grad():
            for n in buffer_names:
                for g, b in enumerate(per_copy_buffers):
                    b[n].copy_(buffers[n][g])
    return list(out.unbind(0))
