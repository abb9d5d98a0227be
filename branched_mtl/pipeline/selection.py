"""One model-selection rule for every model of a comparison.

Every model (single-task, branched, all-shared, random) validates on the
probe split (the config's ``val`` loader) at the same interval and keeps its
best checkpoint by :class:`MultiTaskMetric`'s ``score``: for a single-task
model its primary metric, for a multi-task model Δm against the single-task
models' best probe values. Since Δm of one task is monotone in its metric,
this is one rule: the best checkpoint by Δm on the probe split. The test
split is read once per model, by the final test of the kept checkpoint.
"""
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional

from mmengine.config import Config

from branched_mtl.evaluation.metrics.multi_task_metric import \
    multi_task_metrics

SCORE_KEY = 'score'
BEST_PATTERN = f'best_{SCORE_KEY}_iter_*.pth'


def set_selection(cfg: Config,
                  reference: Optional[Dict[str, float]] = None,
                  primary: Optional[Dict[str, str]] = None) -> Config:
    """Keep the best checkpoint by the probe ``score``.

    Args:
        cfg: A training config, changed in place.
        reference: ``{task: best single-task probe value}``; given for a
            multi-task model, it makes the score Δm.
        primary: ``{task: metric key}`` (without the task prefix) that the
            references are values of.

    Returns:
        ``cfg``.

    Raises:
        ValueError: if the config never validates (no probe, no selection)
            or its val evaluator is not a ``MultiTaskMetric``.
    """
    train_cfg = cfg.get('train_cfg') or {}
    max_iters = train_cfg.get('max_iters')
    interval = train_cfg.get('val_interval')
    if max_iters is None or interval is None or interval > max_iters \
            or train_cfg.get('val_begin', 1) > max_iters:
        raise ValueError(
            'model selection on the probe split needs an iteration-based '
            'schedule that validates (train_cfg.max_iters and '
            f'val_interval <= max_iters); got train_cfg={dict(train_cfg)}')
    metrics = multi_task_metrics(cfg.get('val_evaluator'))
    if not metrics:
        raise ValueError('model selection needs a MultiTaskMetric as '
                         'val_evaluator (it reports the score)')
    for metric in metrics:
        if primary:
            metric['primary'] = dict(primary)
        if reference is not None:
            metric['reference'] = {t: float(v) for t, v in reference.items()}
    hooks = cfg.setdefault('default_hooks', {})
    ckpt = hooks.setdefault('checkpoint', dict(type='CheckpointHook'))
    ckpt.update(save_best=SCORE_KEY, rule='greater')
    return cfg


def best_checkpoint(work_dir: str) -> str:
    """The checkpoint the probe score chose in a run's work dir.

    Raises:
        FileNotFoundError: when the run kept none (it never validated).
    """
    found = glob.glob(osp.join(work_dir, BEST_PATTERN))
    if not found:
        raise FileNotFoundError(
            f'no best checkpoint ({BEST_PATTERN}) in {work_dir}: the run '
            'did not validate on the probe split')

    def step(path: str) -> int:
        return int(re.search(r'_iter_(\d+)\.pth$', path).group(1))

    # a resumed run may leave an older best behind; the newest one wins
    return max(found, key=step)


def read_probe_curve(work_dir: str) -> List[Dict[str, float]]:
    """The run's probe evaluations, one dict per validation, by step.

    Read from mmengine's ``<work_dir>/<timestamp>/vis_data/scalars.json``
    (all timestamps: a resumed run continues in a new one; a step logged
    twice keeps its last record).
    """
    by_step: Dict[int, Dict[str, float]] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if SCORE_KEY in rec and 'step' in rec:
                    by_step[int(rec['step'])] = rec
    return [by_step[s] for s in sorted(by_step)]


def still_improving(curve: List[Dict[str, float]],
                    max_iters: int,
                    last_fraction: float = 0.2,
                    tol: float = 0.005,
                    delta_m: bool = False) -> bool:
    """Whether the probe score still rose over the last part of training.

    Args:
        curve: :func:`read_probe_curve`'s records.
        max_iters: Length of the schedule.
        last_fraction: The part of the schedule looked at (the last fifth).
        tol: The gain that counts as improving: relative to the score for a
            metric (single-task models), in Δm percentage points / 100 for a
            Δm score (multi-task models), so 0.005 means half a percent
            either way.
        delta_m: The score is Δm in % (a multi-task model), already relative.

    Returns:
        True when the best score in the last ``last_fraction`` of the
        schedule beats the best one before it by more than ``tol``.
    """
    cut = (1.0 - last_fraction) * max_iters
    before = [r[SCORE_KEY] for r in curve if r['step'] <= cut]
    after = [r[SCORE_KEY] for r in curve if r['step'] > cut]
    if not before or not after:
        return False
    best_before, best_after = max(before), max(after)
    margin = 100.0 * tol if delta_m else tol * max(abs(best_before), 1e-12)
    return best_after - best_before > margin
