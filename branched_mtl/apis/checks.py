"""Checks of a multi-task config made before anything trains, shared by
``tools/branch.py`` and ``tools/sweep_recombination.py``.

* every task of the model is labelled by the training data, and every
  task an evaluator scores is predicted and labelled
  (:func:`check_data_tasks`);
* the val loader, which every decision reads (the affinity probe, the
  best checkpoint, early stopping), reads neither a test image nor a
  training sample, and holds the probe's K samples (:func:`check_probe`).

The probe check compares what the loaders read, not their config dicts:
each data set is built without its pipeline and every sample is named by
its image file, or the hash of its image, and, where a sample is made of
source images (``source_digits`` of MultiDigits), by those. Two loaders
whose dicts differ (an explicit default seed, another ``num_samples``) but
that read the same test digits are caught; so is a val loader that reads
the train part of the split.
"""
import copy
import hashlib
import os.path as osp
from typing import Any, List, Optional, Set, Tuple

import numpy as np
from mmengine.config import Config

from branched_mtl.evaluation.metrics.multi_task_metric import \
    multi_task_metrics
from branched_mtl.utils.config import type_name
from branched_mtl.utils.errors import UserError, short_repr

__all__ = ['labelled_tasks', 'evaluator_tasks', 'check_data_tasks',
           'check_probe', 'loader_samples']

# a data set whose files are missing cannot be compared here; its own
# loading error comes when training starts
_UNBUILDABLE = (FileNotFoundError, ImportError, NotADirectoryError)


def labelled_tasks(ds: Any) -> Optional[List[str]]:
    """The ``tasks`` a data set config gives labels for, through wrappers
    (``dataset=``, ``datasets=``), or None when the config does not say."""
    if not isinstance(ds, dict):
        return None
    tasks = ds.get('tasks')
    if isinstance(tasks, (list, tuple)):
        return [str(t) for t in tasks]
    parts = ds.get('datasets')
    if isinstance(parts, (list, tuple)) and parts:
        found = [labelled_tasks(p) for p in parts]
        if any(f is None for f in found):
            return None
        return list(dict.fromkeys(t for f in found for t in f))
    return labelled_tasks(ds.get('dataset'))


def evaluator_tasks(evaluator: Any) -> List[str]:
    """Tasks the MultiTaskMetric(s) of an evaluator config score."""
    return list(dict.fromkeys(
        str(t) for metric in multi_task_metrics(evaluator)
        for t in (metric.get('task_metrics') or {})))


def check_data_tasks(cfg: Config, tasks: List[str], config: str) -> None:
    """Refuse a config whose data or evaluators do not fit its tasks.

    Args:
        cfg: The multi-task config.
        tasks: The model's tasks.
        config: How to name the config in messages.

    Raises:
        UserError: a task the data set type does not know, a head whose task
            the training data does not label (it would train on nothing),
            an evaluator scoring a task the model lacks or the data does not
            label.
    """
    from branched_mtl.registry import DATASETS
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg.get(loader, {}).get('dataset', {})
        cls = DATASETS.get(ds.get('type', '')) if ds else None
        known = getattr(cls, 'METAINFO', {}).get('tasks') if cls else None
        if known is None:
            continue
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise UserError(
                f'{config}: task(s) {unknown} unknown to {ds["type"]} of '
                f'{loader} (it has {list(known)})')
    given = labelled_tasks(cfg.get('train_dataloader', {}).get('dataset'))
    if given is not None:
        missing = [t for t in tasks if t not in given]
        if missing:
            raise UserError(
                f'{config}: the training data gives labels for {given} only '
                f'(train_dataloader ... tasks), so the head(s) of {missing} '
                f'would never be trained. Add {missing} to its `tasks` or '
                'remove them from the model (model.encoder.tasks and '
                'model.head.task_heads)')
    for name, loader in (('val_evaluator', 'val_dataloader'),
                         ('test_evaluator', 'test_dataloader')):
        scored = evaluator_tasks(cfg.get(name))
        extra = [t for t in scored if t not in tasks]
        if extra:
            raise UserError(
                f'{config}: {name} scores task(s) {extra} that the model does '
                f'not have (its tasks: {tasks}); remove them from '
                f'{name}.task_metrics')
        given = labelled_tasks(cfg.get(loader, {}).get('dataset'))
        missing = [t for t in scored if given is not None and t not in given]
        if missing:
            raise UserError(
                f'{config}: {loader} gives labels for {given} only, so '
                f'{missing} could not be scored; add them to its `tasks`')


def _without_pipelines(ds: Any) -> Any:
    """A data set config with every pipeline emptied (samples are named
    from their data infos; nothing is loaded or transformed)."""
    if isinstance(ds, (list, tuple)):
        return [_without_pipelines(d) for d in ds]
    if not isinstance(ds, dict):
        return ds
    ds = {k: _without_pipelines(v) if k in ('dataset', 'datasets') else v
          for k, v in ds.items()}
    if 'pipeline' in ds:
        ds['pipeline'] = []
    return ds


def _sample_names(info: dict) -> Tuple[Optional[tuple], Set[tuple]]:
    """A sample's name and the names of the source images it is made of
    (itself, unless it says otherwise); None when it cannot be named."""
    path = info.get('img_path')
    img = info.get('img')
    if isinstance(path, str) and path:
        name = ('file', path if '://' in path else osp.normpath(
            osp.abspath(path)))
    elif isinstance(img, np.ndarray):
        name = ('image', hashlib.sha1(np.ascontiguousarray(img).tobytes())
                .hexdigest())
    else:
        return None, set()
    digits = info.get('source_digits')
    if isinstance(digits, (list, tuple)):
        return name, {('source digit', int(d)) for d in digits}
    return name, {name}


def loader_samples(cfg: Config, loader: str
                   ) -> Optional[Tuple[int, Set[tuple], Set[tuple]]]:
    """What a loader reads: its length, its samples' names and their source
    images' names.

    Returns:
        ``(length, samples, sources)``, or None when the loader is absent,
        its data cannot be found here, or its samples cannot be named.

    Raises:
        UserError: its data set config is wrong (e.g. a ProbeSplit larger
            than the data set it splits).
    """
    from mmengine.registry import init_default_scope

    from branched_mtl.registry import DATASETS, build_stock
    ds = (cfg.get(loader) or {}).get('dataset')
    if not isinstance(ds, dict):
        return None
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    try:
        dataset = build_stock(_without_pipelines(copy.deepcopy(ds)),
                              DATASETS)
        size = len(dataset)
        samples, sources = set(), set()
        for idx in range(size):
            name, made_of = _sample_names(dataset.get_data_info(idx))
            if name is None:
                return None
            samples.add(name)
            sources |= made_of
    except _UNBUILDABLE:
        return None
    except (ValueError, TypeError, KeyError, AssertionError) as e:
        raise UserError(f'{loader}: its data set cannot be built: '
                        f'{str(e).splitlines()[0] if str(e) else e!r}') from e
    return size, samples, sources


def _example(names: Set[tuple]) -> str:
    kind, value = sorted(names)[0]
    return f'{kind} {short_repr(value, 80)}'


def check_probe(cfg: Config, config: str, num_samples: Optional[int],
                option: str = 'branch.probe.num_samples') -> None:
    """Refuse a val loader that reads test images or training samples, or
    holds fewer samples than the probe needs.

    Args:
        cfg: The multi-task config.
        config: How to name the config in messages.
        num_samples: K, the probe's samples (None: not checked).
        option: Where K was given, for messages.

    Raises:
        UserError: naming the loaders and an example of what they share.
    """
    val = (cfg.get('val_dataloader') or {}).get('dataset')
    if not val:
        raise UserError(
            f'{config}: no val_dataloader; every decision (affinity probe, '
            'best checkpoint) reads it. Give it a probe split '
            "(branched_mtl.ProbeSplit, part='probe') of the training data")
    test_leak = (
        f'{config}: val_dataloader reads the test images{{what}}, so the '
        'affinity, the tree and the checkpoints would be chosen on the test '
        'images. Make the val loader a probe split of the training data '
        "(branched_mtl.ProbeSplit, part='probe') or a validation split "
        'distinct from test')
    if val == (cfg.get('test_dataloader') or {}).get('dataset'):
        raise UserError(test_leak.format(what=' (the same data set config)'))
    if type_name(val) == 'ProbeSplit' and val.get('part', 'train') != 'probe':
        raise UserError(
            f"{config}: val_dataloader is the {val.get('part', 'train')!r} "
            'part of its ProbeSplit, the samples the models train on; the '
            "probe would score them on their own training data. Give it "
            "part='probe'")
    read = {name: loader_samples(cfg, name) for name in (
        'val_dataloader', 'test_dataloader', 'train_dataloader')}
    val_read, test_read, train_read = (read['val_dataloader'],
                                       read['test_dataloader'],
                                       read['train_dataloader'])
    size, samples, sources = val_read or (None, set(), set())
    if test_read is not None:
        shared = sources & test_read[2]
        if shared:
            raise UserError(test_leak.format(
                what=f' ({len(shared)} shared, e.g. {_example(shared)})'))
    if train_read is not None:
        shared = samples & train_read[1]
        if shared:
            raise UserError(
                f'{config}: {len(shared)} of the {size} samples of '
                'val_dataloader are also in train_dataloader (e.g. '
                f'{_example(shared)}): the probe would overlap the training '
                'data and score the models on their own training samples. '
                'Give the val loader the probe part (ProbeSplit '
                "part='probe') of the same dataset, num_samples and seed as "
                'the train part')
    train = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if type_name(val) == 'ProbeSplit' and type_name(train) == 'ProbeSplit':
        # the two parts are complements only when drawn alike from the same
        # source (the pipelines may differ); checked also where the samples
        # could not be compared
        def source(ds: dict) -> dict:
            inner = dict(ds.get('dataset') or {})
            inner.pop('pipeline', None)
            return dict(inner=inner, num_samples=ds.get('num_samples'),
                        seed=ds.get('seed', 0))

        if source(train) != source(val):
            raise UserError(
                f'{config}: the train and probe parts of the ProbeSplit are '
                'drawn from different sources or with different settings '
                f'(train: {short_repr(source(train), 300)}, probe: '
                f'{short_repr(source(val), 300)}); they would overlap. Give '
                'both the same dataset (but for its pipeline), num_samples '
                'and seed')
    if num_samples is not None and size is not None and size < num_samples:
        raise UserError(
            f'{config}: the probe split has {size} samples but the affinity '
            f'probe needs {option}={num_samples}; lower it or enlarge the '
            'probe split (ProbeSplit num_samples)')


def check_multi_task_config(cfg: Config, config: str,
                            probe_samples: Optional[int] = None
                            ) -> List[str]:
    """Every check of a multi-task config that needs no training: task
    names, at least two tasks, the data labelling every task and the
    evaluators scoring only those, and a val loader (which every decision
    reads) that reads neither a test image nor a training sample.

    Args:
        cfg: The config (with any overrides applied).
        config: Its path, to name it in errors.
        probe_samples: Samples the affinity probe takes from the val
            loader, if it runs.

    Returns:
        The config's tasks.

    Raises:
        UserError / ValueError: one line naming the config and the fault.
    """
    from .configs import config_tasks
    tasks = config_tasks(cfg)
    # they name config keys, folders and the tree config's text
    bad = [t for t in tasks if not t.isidentifier()]
    if bad:
        raise UserError(
            f'{config}: task name(s) {short_repr(bad, 120)} are not '
            'Python identifiers; the tree config names tasks as keys. '
            'Rename them (letters, digits, _)')
    if len(tasks) < 2:
        raise ValueError(
            f'{config}: a branched network needs at least two tasks, '
            f'the config has {len(tasks)}: {tasks}')
    check_data_tasks(cfg, tasks, config)
    check_probe(cfg, config, probe_samples)
    return tasks
