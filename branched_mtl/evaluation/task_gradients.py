"""Each task's gradient on the shared encoder: balance and conflict.

Loss weights that balance loss *values* can leave one task holding most of
the shared encoder's gradient. The rule used to fix a config's loss weights
before any method runs (docs/comparison.md, "Training fixed before any
method runs"): on the all-shared model, over probe batches, give every task
the same gradient norm on the shared encoder,

    w_t = mean_s(g_s) / g_t,   g_t = || d L_t / d theta_shared ||,

averaged over batches; the weights are normalised to mean 1. The same
measurement gives each task's share of the gradient and, per block, the
cosine between tasks' gradients (negative: the tasks pull the shared
weights apart).
"""
import copy
import itertools
from typing import Dict, Iterable, List, Mapping, Sequence

import torch
from torch import Tensor


def _task_losses(model: torch.nn.Module, data: dict) -> Dict[str, Tensor]:
    """Unweighted loss of every task on one batch (``<task>.*loss*``)."""
    head = model.head
    weights = dict(head.loss_weights)
    try:
        # measured without the config's weights: the rule sets them
        head.loss_weights = {t: 1.0 for t in weights}
        data = model.data_preprocessor(data, True)
        losses = model(**data, mode='loss')
    finally:
        head.loss_weights = weights
    per_task: Dict[str, Tensor] = {}
    for name, value in losses.items():
        task, _, part = name.partition('.')
        if 'loss' in part and task in weights:
            per_task[task] = per_task.get(task, 0) + value
    return per_task


def shared_block_params(model: torch.nn.Module) -> Dict[str, List[Tensor]]:
    """Trainable parameters of every block that all tasks share.

    Args:
        model: A :class:`BranchedMultiTaskModel`.

    Returns:
        ``{block name: parameters}``, input to output, shared blocks only.
    """
    encoder = model.encoder
    out = {}
    for b, name in enumerate(encoder.block_names):
        if len(encoder.branches[b]) != 1:
            continue
        params = [p for p in encoder.nodes[b][0].parameters()
                  if p.requires_grad]
        if params:
            out[name] = params
    return out


def task_gradients(model: torch.nn.Module,
                   batches: Iterable[dict]) -> Dict[str, object]:
    """Per task and shared block, the gradient norms and cosines.

    Args:
        model: A :class:`BranchedMultiTaskModel` (usually all-shared). It
            is measured as a copy in training mode (batch statistics, as in
            training), so it and its batch-norm statistics stay as they are.
        batches: Data batches as a loader yields them (probe split).

    Returns:
        ``dict(tasks, blocks, norm, share, cosine)``: ``norm[task]`` the
        mean over batches of the gradient norm on all shared blocks;
        ``share[task]`` its fraction of the sum over tasks; ``cosine[block]
        [a][b]`` the mean cosine between tasks a and b on that block (and
        under ``'all'`` on all shared blocks).
    """
    model = copy.deepcopy(model).train()
    blocks = shared_block_params(model)
    if not blocks:
        raise ValueError('task_gradients: the model shares no block among '
                         'all tasks (use the all-shared model)')
    names = list(blocks)
    tasks = list(model.head.tasks)
    norm_sum = {t: 0.0 for t in tasks}
    cos_sum = {k: {a: {b: 0.0 for b in tasks} for a in tasks}
               for k in names + ['all']}
    count = 0
    for data in batches:
        losses = _task_losses(model, data)
        missing = [t for t in tasks if t not in losses]
        if missing:
            raise ValueError(f'task_gradients: the batch has no loss for '
                             f'task(s) {missing}')
        flat: Dict[str, Dict[str, Tensor]] = {t: {} for t in tasks}
        for t in tasks:
            params = [p for k in names for p in blocks[k]]
            grads = torch.autograd.grad(losses[t], params,
                                        retain_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g
                     for p, g in zip(params, grads)]
            i = 0
            for k in names:
                n = len(blocks[k])
                flat[t][k] = torch.cat([g.reshape(-1) for g in grads[i:i + n]])
                i += n
            flat[t]['all'] = torch.cat([flat[t][k] for k in names])
            norm_sum[t] += float(flat[t]['all'].norm())
        for k in names + ['all']:
            for a, b in itertools.product(tasks, tasks):
                cos_sum[k][a][b] += float(torch.nn.functional.cosine_similarity(
                    flat[a][k], flat[b][k], dim=0, eps=1e-12))
        count += 1
    if count == 0:
        raise ValueError('task_gradients: no batch given')
    norm = {t: v / count for t, v in norm_sum.items()}
    total = sum(norm.values()) or 1.0
    return dict(tasks=tasks, blocks=names, batches=count, norm=norm,
                share={t: v / total for t, v in norm.items()},
                cosine={k: {a: {b: v / count for b, v in row.items()}
                            for a, row in m.items()}
                        for k, m in cos_sum.items()})


def balanced_loss_weights(norm: Mapping[str, float]) -> Dict[str, float]:
    """Loss weights that give every task the same gradient norm.

    Args:
        norm: ``{task: gradient norm on the shared encoder}`` measured with
            all weights 1 (:func:`task_gradients`).

    Returns:
        ``{task: weight}``, mean 1, ``weight * norm`` equal for all tasks.
    """
    bad = {t: v for t, v in norm.items() if not v > 0}
    if bad:
        raise ValueError(f'balanced_loss_weights: gradient norms must be '
                         f'> 0, got {bad}')
    inverse = {t: 1.0 / float(v) for t, v in norm.items()}
    mean = sum(inverse.values()) / len(inverse)
    return {t: v / mean for t, v in inverse.items()}


def cross_group_cosines(cosine: Mapping[str, Mapping[str, float]],
                        groups: Sequence[Sequence[str]]
                        ) -> Dict[str, float]:
    """Mean cosine of task pairs within a group and across groups.

    Args:
        cosine: ``{a: {b: cosine}}`` of one block.
        groups: A partition of (some of) the tasks.

    Returns:
        ``dict(within=..., across=...)`` (None where no such pair exists).
    """
    group_of = {t: g for g, members in enumerate(groups) for t in members}
    within, across = [], []
    for a, b in itertools.combinations(sorted(group_of), 2):
        (within if group_of[a] == group_of[b] else across).append(
            float(cosine[a][b]))
    return dict(within=sum(within) / len(within) if within else None,
                across=sum(across) / len(across) if across else None)
