"""Derive the configs of Step 1 and Step 2 from one multi-task config.

* :func:`single_task_config`: the single-task model of one task (Step 1):
  same encoder, that task's head, data and metrics, same schedule.
* :func:`recombined_config`: the recombined network of (target i, source j,
  split l) (Step 2): the bottom l blocks from j's single-task checkpoint,
  frozen; the rest and i's head from i's checkpoint, retrained for i.
* :func:`shared_bottom_config`: all N targets of one (source j, split l)
  retrained together on one frozen bottom (a cheaper Step 2).
* :func:`add_affinity_hook`, :func:`set_train_iters` (from :mod:`.schedules`),
  :func:`set_data_fraction`: the sweep's cost knobs and the probe.

All functions return a new :class:`mmengine.Config` and leave the input
untouched, so one parsed multi-task config serves every derived job.
"""
import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config, ConfigDict

from branched_mtl.utils.config import type_name
from .schedules import set_train_iters

__all__ = [
    'config_tasks', 'single_task_config', 'recombined_config',
    'shared_bottom_config', 'add_affinity_hook', 'set_train_iters',
    'set_data_fraction', 'disable_validation', 'resolve_tasks_arg',
    'encoder_block_names'
]

_DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_EVALUATORS = ('val_evaluator', 'test_evaluator')


def config_tasks(cfg: Config) -> List[str]:
    """The tasks of a multi-task config (``model.encoder.tasks``).

    Args:
        cfg: A config of a :class:`BranchedMultiTaskModel`.

    Returns:
        The task names, in config order.
    """
    try:
        tasks = list(cfg.model.encoder.tasks)
    except AttributeError as e:
        raise ValueError('config has no model.encoder.tasks: not a '
                         'BranchedMultiTaskModel config') from e
    heads = list(cfg.model.head.task_heads)
    if sorted(heads) != sorted(tasks):
        raise ValueError(f'model.encoder.tasks {tasks} and '
                         f'model.head.task_heads {heads} differ')
    return tasks


def _check_tasks(cfg: Config, tasks: Sequence[str]) -> List[str]:
    known = config_tasks(cfg)
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise ValueError(f'unknown task(s) {unknown}: the config\'s tasks '
                         f'are {known}')
    if len(set(tasks)) != len(tasks):
        raise ValueError(f'tasks listed twice: {tasks}')
    return tasks


def _restrict_dataset(dataset: Any, tasks: List[str]) -> None:
    """Set ``tasks`` wherever a dataset config (or a wrapped one) has it."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            _restrict_dataset(item, tasks)
        return
    if not isinstance(dataset, dict):
        return
    if 'tasks' in dataset:
        dataset['tasks'] = list(tasks)
    # dataset wrappers: RepeatDataset / ClassBalancedDataset / Concat
    for key in ('dataset', 'datasets'):
        if key in dataset:
            _restrict_dataset(dataset[key], tasks)


def _restrict_evaluator(evaluator: Any, tasks: List[str]) -> None:
    if isinstance(evaluator, (list, tuple)):
        for item in evaluator:
            _restrict_evaluator(item, tasks)
        return
    if not isinstance(evaluator, dict):
        return
    if 'metrics' in evaluator:  # an Evaluator config wrapping metrics
        _restrict_evaluator(evaluator['metrics'], tasks)
    if type_name(evaluator) != 'MultiTaskMetric':
        return
    metrics = evaluator.get('task_metrics') or {}
    evaluator['task_metrics'] = {t: metrics[t] for t in tasks if t in metrics}
    for key in ('primary', 'reference'):
        if evaluator.get(key) is not None:
            evaluator[key] = {
                t: v for t, v in evaluator[key].items() if t in tasks}
    if evaluator.get('lower_is_better') is not None:
        evaluator['lower_is_better'] = [
            t for t in evaluator['lower_is_better'] if t in tasks]


def _restrict(cfg: Config, tasks: List[str]) -> Config:
    """A copy of ``cfg`` with model, data and metrics cut to ``tasks``."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    model.encoder.tasks = list(tasks)
    model.encoder.branches = None
    heads = model.head.task_heads
    model.head.task_heads = ConfigDict({t: heads[t] for t in tasks})
    if model.head.get('loss_weights') is not None:
        model.head.loss_weights = {
            t: w for t, w in model.head.loss_weights.items() if t in tasks}
    for name in _DATALOADERS:
        loader = cfg.get(name)
        if isinstance(loader, dict) and 'dataset' in loader:
            _restrict_dataset(loader['dataset'], tasks)
    for name in _EVALUATORS:
        if cfg.get(name) is not None:
            _restrict_evaluator(cfg[name], tasks)
    # the `tasks` variable of the base configs, for whoever reads it
    if isinstance(cfg.get('tasks'), (list, tuple)):
        cfg.tasks = list(tasks)
    return cfg


def single_task_config(cfg: Config, task: str) -> Config:
    """The single-task model of ``task`` (Step 1 of the method).

    Same encoder (all blocks, no tree), ``task``'s head and loss weight,
    datasets and ``MultiTaskMetric`` restricted to ``task``; schedule,
    optimiser and runtime unchanged, so every single-task model trains under
    identical conditions.

    Args:
        cfg: A multi-task config.
        task: One of its tasks.

    Returns:
        A new config.
    """
    if not isinstance(task, str):
        raise TypeError(f'task must be a task name, got {task!r}')
    _check_tasks(cfg, [task])
    return _restrict(cfg, [task])


_BLOCKS_CACHE: Dict[str, List[str]] = {}


def encoder_block_names(cfg: Config) -> List[str]:
    """Block names of the config's encoder (built once per backbone)."""
    from branched_mtl.models.encoders.branched_encoder import describe_blocks
    enc = cfg.model.encoder
    granularity = enc.get('granularity', 'stage')
    key = repr((sorted(dict(enc.backbone).items(), key=str), granularity))
    if key not in _BLOCKS_CACHE:
        _BLOCKS_CACHE[key] = [
            b.name for b in describe_blocks(enc.backbone, granularity)]
    return list(_BLOCKS_CACHE[key])


def _check_split(cfg: Config, split: int) -> None:
    blocks = encoder_block_names(cfg)
    if (not isinstance(split, (int, np.integer)) or isinstance(split, bool)
            or not 1 <= split <= len(blocks)):
        raise ValueError(f'split must be the number of frozen bottom blocks, '
                         f'an int in 1..{len(blocks)} (blocks {blocks}), got '
                         f'{split!r}')


def set_custom_hook(cfg: Config, hook: dict) -> None:
    """Put ``hook`` in ``custom_hooks``, replacing one of the same type."""
    hooks = [h for h in (cfg.get('custom_hooks') or [])
             if type_name(h) != type_name(hook)]
    cfg.custom_hooks = hooks + [hook]


def recombined_config(cfg: Config,
                      target: str,
                      source: str,
                      split: int,
                      target_ckpt: str,
                      source_ckpt: str,
                      probe: Optional[dict] = None) -> Config:
    """The recombined network (target i, source j, split l) of Step 2.

    The single-task model of ``target`` with its bottom ``split`` blocks
    frozen (``BranchedEncoder(frozen_blocks=split)``, batch norm in eval
    mode); a :class:`RecombinationHook` fills them from ``source``'s
    checkpoint and the rest (upper blocks, head) from ``target``'s before
    training.

    Args:
        cfg: The multi-task config.
        target: Task i, the one retrained.
        source: Task j, whose encoder bottom is reused.
        split: l, the number of frozen bottom blocks (1..L).
        target_ckpt: Checkpoint of i's single-task model, or its work dir
            (resolved through ``last_checkpoint`` when training starts).
        source_ckpt: Same for j.
        probe: Arguments of the :class:`AffinityHook` to add (e.g.
            ``dict(num_samples=64)``); None adds none.

    Returns:
        A new config.
    """
    _check_tasks(cfg, list(dict.fromkeys([target, source])))
    _check_split(cfg, split)
    out = single_task_config(cfg, target)
    out.model.encoder.frozen_blocks = int(split)
    set_custom_hook(
        out,
        dict(type='RecombinationHook', source_checkpoint=str(source_ckpt),
             target_checkpoints={target: str(target_ckpt)}, split=int(split),
             source_task=source))
    if probe is not None:
        add_affinity_hook(
            out, recombination=dict(target=target, source=source,
                                    split=int(split)), **probe)
    return out


def shared_bottom_config(cfg: Config,
                         source: str,
                         split: int,
                         target_ckpts: Mapping[str, str],
                         source_ckpt: str,
                         probe: Optional[dict] = None) -> Config:
    """All recombined networks of one (source j, split l) as one model.

    The bottom ``split`` blocks are shared by every target and frozen
    (loaded from j); from block ``split`` on, each target has its own
    branch and head loaded from its own checkpoint. Since the bottom is
    frozen and the branches share no parameter, each target's top gets
    exactly the gradients of its own recombined run (same data order, per-
    parameter optimiser state), while the bottom runs once per batch.

    Args:
        cfg: The multi-task config.
        source: Task j.
        split: l, the number of frozen bottom blocks.
        target_ckpts: ``{target: checkpoint or work dir}``; its keys are the
            targets, in the model's task order.
        source_ckpt: Checkpoint (or work dir) of j.
        probe: Arguments of the :class:`AffinityHook`; None adds none.

    Returns:
        A new config.
    """
    targets = _check_tasks(cfg, list(target_ckpts))
    _check_tasks(cfg, [source])
    _check_split(cfg, split)
    optim = cfg.get('optim_wrapper') or {}
    if optim.get('clip_grad'):
        # a global gradient norm would couple the targets' updates
        raise ValueError('shared-bottom mode needs optim_wrapper without '
                         'clip_grad (a global norm couples the targets); '
                         'use one job per pair')
    out = _restrict(cfg, targets)
    enc = out.model.encoder
    num_blocks = len(encoder_block_names(cfg))
    enc.branches = [[list(targets)] if b < split else [[t] for t in targets]
                    for b in range(num_blocks)]
    enc.frozen_blocks = int(split)
    set_custom_hook(
        out,
        dict(type='RecombinationHook', source_checkpoint=str(source_ckpt),
             target_checkpoints={t: str(target_ckpts[t]) for t in targets},
             split=int(split), source_task=source))
    if probe is not None:
        add_affinity_hook(
            out, recombination=dict(target=None, source=source,
                                    split=int(split)), **probe)
    return out


def add_affinity_hook(cfg: Config, **kwargs) -> Config:
    """Add (or replace) the :class:`AffinityHook` in ``custom_hooks``.

    Args:
        cfg: The config, changed in place.
        **kwargs: The hook's arguments (``dataset``, ``num_samples``,
            ``sample_indices``, ``seed``, ``recombination`` ...).

    Returns:
        ``cfg``.
    """
    set_custom_hook(cfg, dict(type='AffinityHook', **kwargs))
    return cfg


def add_early_stopping(cfg: Config, **kwargs) -> Config:
    """Add (or replace) the :class:`ProbeEarlyStoppingHook`.

    Args:
        cfg: The config, changed in place.
        **kwargs: The hook's arguments (``patience``, ``interval``,
            ``min_delta``, ``dataset``, ``num_samples``, ``seed`` ...).

    Returns:
        ``cfg``.
    """
    set_custom_hook(cfg, dict(type='ProbeEarlyStoppingHook', **kwargs))
    return cfg


def disable_validation(cfg: Config) -> Config:
    """Skip validation during training (the affinity probe does not need it).

    Args:
        cfg: The config, changed in place.

    Returns:
        ``cfg``.
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg:
        # the iteration loop validates from val_begin on
        train_cfg['val_begin'] = train_cfg['max_iters'] + 1
    elif 'max_epochs' in train_cfg:
        train_cfg['val_begin'] = train_cfg['max_epochs'] + 1
    return cfg


def set_data_fraction(cfg: Config,
                      fraction: float,
                      dataset_len: int,
                      seed: int = 0) -> Config:
    """Train on a fixed random fraction of the training set.

    The subset goes into the dataset's ``indices`` option (mmengine
    ``BaseDataset``), drawn with ``seed`` so that every job of a sweep sees
    the same samples.

    Args:
        cfg: The config, changed in place.
        fraction: In (0, 1].
        dataset_len: Length of the full training set.
        seed: Seed of the subset.

    Returns:
        ``cfg``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'data fraction must be in (0, 1], got {fraction}')
    if fraction == 1:
        return cfg
    dataset = cfg.train_dataloader.dataset
    # ProbeSplit takes `indices` like a BaseDataset (positions in its part)
    if ('dataset' in dataset or 'datasets' in dataset) \
            and type_name(dataset) != 'ProbeSplit':
        raise ValueError('--data-fraction needs a plain BaseDataset or a '
                         'ProbeSplit as the training set (their `indices` '
                         f'option), not the wrapper {type_name(dataset)}')
    num = max(1, int(round(fraction * dataset_len)))
    rng = np.random.default_rng(seed)
    dataset['indices'] = sorted(
        int(i) for i in rng.choice(dataset_len, num, replace=False))
    return cfg


def resolve_tasks_arg(value: Union[str, Sequence[str], None],
                      cfg: Config) -> List[str]:
    """``'a,b'`` / ``['a', 'b']`` / None (all) -> checked task list."""
    if value is None:
        return config_tasks(cfg)
    if isinstance(value, str):
        value = [t.strip() for t in value.split(',') if t.strip()]
    return _check_tasks(cfg, value)
