"""Measure conflict between tasks before any branching method runs.

Two signs that tasks compete for a shared encoder:

* accuracy: the all-shared model falls below the single-task models on some
  tasks by more than the seeds' spread (:func:`accuracy_gaps`);
* gradients: on each shared block, the cosine between two tasks' loss
  gradients (:func:`gradient_cosines`); with planted groups, pairs of
  different groups should point further apart than pairs of one group
  (:func:`branched_mtl.evaluation.planted_groups.within_across`).

``tools/analysis/measure_conflict.py`` runs both over widths and seeds.
"""
import copy
import glob
import json
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from .task_gradients import task_gradients

__all__ = ['set_width', 'gradient_cosines', 'read_task_curves',
           'unconverged_tasks', 'accuracy_gaps']


def set_width(cfg: Config, width: int) -> Config:
    """A copy of a ResNet config with ``width`` base and stem channels and
    every linear head widened to match (``8 * width`` inputs: ResNet-18/34
    end with ``8 * base_channels`` channels).

    Args:
        cfg: A config of a ``BranchedMultiTaskModel`` on an mmpretrain
            ``ResNet`` (basic blocks) with ``LinearClsHead`` task heads.
        width: Base channels.

    Returns:
        A new config.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f'width must be an int >= 1, got {width!r}')
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.encoder.backbone
    if backbone.get('depth') not in (18, 34):
        raise ValueError(f'set_width: needs a ResNet-18/34 backbone (basic '
                         f'blocks), got {backbone.get("type")} depth '
                         f'{backbone.get("depth")}')
    backbone.base_channels = width
    backbone.stem_channels = width
    for head in cfg.model.head.task_heads.values():
        head.in_channels = 8 * width
    if 'width' in cfg:
        cfg.width = width
    return cfg


def gradient_cosines(model: torch.nn.Module, data_batch: dict,
                     tasks: Optional[Sequence[str]] = None
                     ) -> Tuple[List[str], np.ndarray]:
    """Cosines between the tasks' loss gradients on each shared block.

    The gradients are taken on a copy of the model in training mode (batch
    statistics, as in training), so the model itself and its batch-norm
    running statistics are left untouched.

    Args:
        model: A ``BranchedMultiTaskModel`` whose encoder shares every block
            (all-shared).
        data_batch: A collated batch (``dict(inputs=..., data_samples=...)``)
            labelled for every task.
        tasks: The tasks (default: the model's).

    Returns:
        The block names and a ``(blocks, N, N)`` array of cosines (1 on the
        diagonal; 0 where a task's gradient on the block is zero).
    """
    encoder = model.encoder
    if any(len(level) != 1 for level in encoder.nodes):
        raise ValueError('gradient_cosines: every block of the encoder must '
                         'be shared by all tasks (an all-shared model)')
    tasks = list(tasks or model.tasks)
    # the measurement of the loss-weight rule, on this one batch
    result = task_gradients(model, [data_batch])
    cos = np.array([[[result['cosine'][block][a][b] for b in tasks]
                     for a in tasks] for block in result['blocks']])
    for mat in cos:
        np.fill_diagonal(mat, 1.0)
    return list(result['blocks']), cos


def read_task_curves(work_dir: str,
                     tasks: Sequence[str]) -> Dict[str, List[Tuple[int,
                                                                   float]]]:
    """The probe accuracy of each task at every validation of a run.

    Read from mmengine's ``<work_dir>/*/vis_data/scalars.json`` (keys
    ``<task>/accuracy/top1``).

    Returns:
        ``{task: [(step, accuracy), ...]}`` by step.
    """
    curves: Dict[str, Dict[int, float]] = {t: {} for t in tasks}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                for t in tasks:
                    key = f'{t}/accuracy/top1'
                    if key in rec and 'step' in rec:
                        curves[t][int(rec['step'])] = float(rec[key])
    return {t: sorted(c.items()) for t, c in curves.items()}


def unconverged_tasks(curves: Mapping[str, Sequence[Tuple[int, float]]],
                      max_iters: int, last_fraction: float = 0.2,
                      tol: float = 0.005) -> List[str]:
    """The tasks whose probe accuracy still rose over the last part of the
    schedule: the best value after ``(1 - last_fraction) * max_iters``
    beats the best one before by more than ``tol`` relative (the pipeline's
    rule, :func:`branched_mtl.pipeline.selection.still_improving`)."""
    cut = (1.0 - last_fraction) * max_iters
    rising = []
    for task, curve in curves.items():
        before = [v for s, v in curve if s <= cut]
        after = [v for s, v in curve if s > cut]
        if before and after and max(after) - max(before) > tol * max(
                abs(max(before)), 1e-12):
            rising.append(task)
    return rising


def accuracy_gaps(single: Mapping[str, Sequence[float]],
                  shared: Mapping[str, Sequence[float]]
                  ) -> Dict[str, Dict[str, float]]:
    """All-shared minus single-task accuracy per task, over seeds.

    Args:
        single: ``{task: [accuracy per seed]}`` of the single-task models.
        shared: ``{task: [accuracy per seed]}`` of the all-shared model.

    Returns:
        Per task: ``single``/``shared`` means and sample stds, ``gap``
        (shared minus single mean) and ``beyond_spread``: the gap is
        negative and larger than the two stds together.
    """
    out = {}
    for task in single:
        s = np.asarray(single[task], float)
        a = np.asarray(shared[task], float)
        s_std = float(s.std(ddof=1)) if len(s) > 1 else 0.0
        a_std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        gap = float(a.mean() - s.mean())
        out[task] = dict(single=float(s.mean()), single_std=s_std,
                         shared=float(a.mean()), shared_std=a_std, gap=gap,
                         beyond_spread=bool(gap < -(s_std + a_std)))
    return out
