"""``--iters``: shorten an iteration-based schedule, every scheduler with it.

:func:`set_train_iters` rescales the step-valued fields of every known
mmengine / mmseg / mmpretrain parameter scheduler (``begin``/``end``,
``milestones``, ``step_size``, ``T_max``, ``periods``, ``total_steps``) and
refuses, naming it, a scheduler whose step-valued fields it does not know.
"""
import copy
import warnings
from typing import Any, Dict, List, Sequence, Tuple

from mmengine.config import Config

from branched_mtl.utils.config import type_name

__all__ = ['set_train_iters']


def _scale(value: Any, ratio: float) -> Any:
    return max(1, int(round(value * ratio))) if value else value


# The fields of each known parameter scheduler that count steps, besides
# ``begin``/``end`` (which all have): they are what --iters must rescale.
# Keyed by class name, LR/Momentum/ParamScheduler variants alike; a type not
# listed is refused, since nothing tells which of its fields count steps.
_LENGTH_FIELDS = ('step_size', 'T_max', 'total_steps')
_SCHEDULER_STEP_FIELDS: Dict[str, Tuple[str, ...]] = {
    kind + suffix: fields
    for kind, fields in (
        ('Constant', ()), ('Exponential', ()), ('Linear', ()), ('Poly', ()),
        ('Step', ('step_size', )), ('MultiStep', ('milestones', )),
        ('CosineAnnealing', ('T_max', )), ('CosineRestart', ('periods', )),
        # patience/cooldown count validations, not steps
        ('ReduceOnPlateau', ()))
    for suffix in ('LR', 'Momentum', 'ParamScheduler')
}
_SCHEDULER_STEP_FIELDS.update({
    'OneCycleLR': ('total_steps', ),
    'OneCycleParamScheduler': ('total_steps', ),
    'PolyLRRatio': (),  # mmseg
    'CosineAnnealingWeightDecay': ('T_max', ),  # mmpretrain
})


def _iter_schedulers(schedulers: Any) -> List[Tuple[str, Any]]:
    """``(name, config)`` of every scheduler in ``param_scheduler``.

    It is one scheduler, a list of them, or (several optimizers) a dict of
    either per optimizer name.
    """
    if not schedulers:
        return []
    if isinstance(schedulers, dict) and 'type' not in schedulers:
        return [(f'[{key!r}]{name}', sched)
                for key, value in schedulers.items()
                for name, sched in _iter_schedulers(value)]
    if isinstance(schedulers, dict):
        return [('', schedulers)]
    return [(f'[{i}]', sched) for i, sched in enumerate(schedulers)]


def _scale_milestones(milestones: Sequence[int], ratio: float, begin: int,
                      stop: int, new_begin: int, new_stop: int,
                      label: str) -> List[int]:
    """Rescale MultiStep ``milestones`` (steps after ``begin``).

    Distinct milestones stay distinct (a collision after rounding moves the
    later one a step on), so the number of decays is kept; a milestone
    repeated in the config (a double decay) stays repeated. A decay that
    happened in training (before ``stop``, the end of the scheduler or of
    training) must still happen before ``new_stop``.
    """
    old = sorted(int(m) for m in milestones)
    new: List[int] = []
    for i, m in enumerate(old):
        scaled = int(round(m * ratio))
        if m > 0:
            scaled = max(1, scaled)
        if i and m > old[i - 1]:
            scaled = max(scaled, new[-1] + 1)
        elif i:
            scaled = new[-1]
        new.append(scaled)
    lost = [(m, s) for m, s in zip(old, new)
            if begin + m < stop and not new_begin + s < new_stop]
    if lost:
        raise ValueError(
            f'{label}: cannot fit milestones {old} into '
            f'{new_stop - new_begin} step(s): they would become {new}, and '
            f'the decay(s) at {[m for m, _ in lost]} would no longer happen '
            'during training; use a larger iters')
    return new


def _scale_periods(periods: Sequence[int], ratio: float) -> List[int]:
    """Rescale CosineRestart ``periods`` through their cumulative ends, so
    that rounding does not drift the later restarts."""
    ends: List[int] = []
    total = 0
    for period in periods:
        total += period
        ends.append(max(int(round(total * ratio)),
                        (ends[-1] if ends else 0) + 1))
    return [e - s for s, e in zip([0] + ends[:-1], ends)]


def _scale_scheduler(sched: dict, name: str, ratio: float, old_iters: int,
                     iters: int) -> None:
    """Rescale the step-valued fields of one iteration-based scheduler."""
    kind = type_name(sched)
    label = f'param_scheduler{name} ({kind or repr(sched.get("type"))})'
    if kind not in _SCHEDULER_STEP_FIELDS:
        raise ValueError(
            f'{label}: cannot rescale this iteration-based scheduler to '
            f'{iters} iterations: '
            'its type is none of the mmengine/mmseg/mmpretrain schedulers '
            'whose step-valued fields are known; scale it by hand '
            '(--cfg-options) instead of using --iters')
    fields = _SCHEDULER_STEP_FIELDS[kind]
    # the runner's defaults: begin 0, end max_iters
    begin = int(sched.get('begin', 0))
    stop = min(sched.get('end', old_iters), old_iters)
    for key in ('begin', 'end'):
        if isinstance(sched.get(key), (int, float)):
            sched[key] = min(iters, int(round(sched[key] * ratio)))
    if 'end' in sched and sched['end'] <= sched.get('begin', 0):
        sched['end'] = sched.get('begin', 0) + 1
    new_begin = int(sched.get('begin', 0))
    new_stop = min(sched.get('end', iters), iters)
    total_steps = sched.get('total_steps')
    for key in fields:
        value = sched.get(key)
        if value is None:
            continue  # e.g. T_max/total_steps default to end - begin
        if key in _LENGTH_FIELDS:
            sched[key] = _scale(value, ratio)
        elif key == 'milestones':
            sched[key] = _scale_milestones(value, ratio, begin, stop,
                                           new_begin, new_stop, label)
        elif key == 'periods':
            sched[key] = _scale_periods(value, ratio)
    if total_steps and total_steps >= stop - begin - 1:
        # OneCycle raises once it steps past total_steps: if the original
        # covered its steps in training, the rounded one must too
        sched['total_steps'] = max(sched['total_steps'],
                                   new_stop - new_begin - 1)


def set_train_iters(cfg: Config, iters: int) -> Config:
    """Shorten an iteration-based schedule to ``iters`` iterations.

    Every step-valued field of the iteration-based parameter schedulers
    (``begin``/``end``, MultiStep ``milestones``, Step ``step_size``,
    CosineAnnealing ``T_max``, CosineRestart ``periods``, OneCycle
    ``total_steps``) and the checkpoint and validation intervals are scaled
    by the same ratio, so the shape of the schedule is kept. Epoch-based
    schedulers are left alone, ``convert_to_iter_based`` ones with a
    warning (they count epochs of the training set, not iterations).

    Args:
        cfg: The config, changed in place.
        iters: The new number of training iterations.

    Returns:
        ``cfg``.

    Raises:
        ValueError: ``iters`` is not a positive int, the loop is not
            iteration-based, an iteration-based scheduler is of an unknown
            type, or ``iters`` is too small to keep a scheduler's decays in
            training.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f'iters must be a positive int, got {iters!r}')
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' not in train_cfg:
        raise ValueError('--iters needs an iteration-based train loop '
                         '(train_cfg.max_iters); this config has '
                         f'{dict(train_cfg)}')
    old_iters = train_cfg['max_iters']
    ratio = iters / old_iters
    # check and rescale every scheduler before changing anything, so that a
    # refused config is left as it was
    schedulers = copy.deepcopy(cfg.get('param_scheduler'))
    for name, sched in _iter_schedulers(schedulers):
        if not sched.get('by_epoch', True):
            _scale_scheduler(sched, name, ratio, old_iters, iters)
        elif sched.get('convert_to_iter_based', False):
            # its positions are epochs of the training set, whose length
            # --iters does not change
            warnings.warn(
                f'--iters: param_scheduler{name} ({type_name(sched)}) is '
                'epoch-based with convert_to_iter_based=True; its epochs '
                f'are not rescaled to {iters} iterations')
        # else an epoch-based scheduler does not count iterations
    if schedulers:
        cfg.param_scheduler = schedulers
    train_cfg['max_iters'] = iters
    if 'val_interval' in train_cfg:
        train_cfg['val_interval'] = min(
            iters, _scale(train_cfg['val_interval'], ratio))
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(ckpt, dict) and 'interval' in ckpt and ckpt['interval'] > 0:
        ckpt['interval'] = min(iters, _scale(ckpt['interval'], ratio))
    return cfg
