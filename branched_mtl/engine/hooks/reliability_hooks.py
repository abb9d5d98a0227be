"""Hooks that keep a run from training silently wrong or losing work.

* :class:`TaskCheckHook`: before the run, every head of the model must get
  labels from the training data, and every task the evaluators score must
  be one the model predicts and the data labels.
* :class:`ResumeValidationHook`: a run killed between its checkpoint and
  the validation of that step resumes *after* the step, so mmengine would
  never validate it (no probe score, maybe no best checkpoint); this hook
  runs that validation first.

``branched_mtl.apis.runner.build_runner`` adds both to every run.
"""
import os.path as osp
from typing import Any, List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from branched_mtl.registry import HOOKS
from branched_mtl.utils.errors import UserError

__all__ = ['TaskCheckHook', 'ResumeValidationHook', 'dataset_tasks']


def dataset_tasks(dataset: Any) -> Optional[List[str]]:
    """The tasks a built data set gives labels for, or None if it does not
    say (its ``tasks`` attribute or ``metainfo['tasks']``, through wrappers
    like ``ProbeSplit``, ``RepeatDataset`` and ``ConcatDataset``)."""
    tasks = getattr(dataset, 'tasks', None)
    if isinstance(tasks, (list, tuple)) and all(
            isinstance(t, str) for t in tasks):
        return list(tasks)
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)) and inner:
        parts = [dataset_tasks(d) for d in inner]
        if any(p is None for p in parts):
            return None
        # a task is labelled when any part labels it
        return list(dict.fromkeys(t for p in parts for t in p))
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        return dataset_tasks(inner)
    try:
        meta = dataset.metainfo
    except Exception:  # noqa: BLE001  (a data set without metainfo)
        return None
    tasks = meta.get('tasks') if isinstance(meta, dict) else None
    if isinstance(tasks, (list, tuple)) and all(
            isinstance(t, str) for t in tasks):
        return list(tasks)
    return None


def _model_tasks(runner: Any) -> Optional[List[str]]:
    model = runner.model
    model = getattr(model, 'module', model)  # DDP wrappers
    tasks = getattr(model, 'tasks', None)
    return list(tasks) if isinstance(tasks, (list, tuple)) else None


def _metric_tasks(evaluator: Any) -> List[str]:
    tasks: List[str] = []
    for metric in getattr(evaluator, 'metrics', []) or []:
        if type(metric).__name__ == 'MultiTaskMetric':
            tasks += [t for t in metric.tasks if t not in tasks]
    return tasks


def _name(dataset: Any) -> str:
    inner = dataset
    while getattr(inner, 'dataset', None) is not None:
        inner = inner.dataset
    return type(inner).__name__


@HOOKS.register_module()
class TaskCheckHook(Hook):
    """Refuse, before any training or loading, a run whose tasks disagree.

    * Training: a head whose task the training data never labels would
      stay untrained while validation reports numbers for it.
    * Validation / test: a task the evaluator scores but the model does not
      predict (stock metrics then fail deep inside, e.g. ``KeyError:
      'pred_label'``), or that the data set does not label.
    """
    priority = 'VERY_HIGH'

    def before_run(self, runner: Any) -> None:
        from mmengine.runner import BaseLoop
        model_tasks = _model_tasks(runner)
        if model_tasks is None:
            return
        loops = [('train_dataloader', getattr(runner, '_train_loop', None),
                  None),
                 ('val_dataloader', getattr(runner, '_val_loop', None),
                  'val_evaluator'),
                 ('test_dataloader', getattr(runner, '_test_loop', None),
                  'test_evaluator')]
        for loader, loop, evaluator_name in loops:
            if not isinstance(loop, BaseLoop):
                continue  # not part of this run (train / test only)
            dataset = getattr(getattr(loop, 'dataloader', None), 'dataset',
                              None)
            data_tasks = dataset_tasks(dataset) if dataset is not None \
                else None
            if evaluator_name is None:
                if data_tasks is not None:
                    self._check_train(model_tasks, data_tasks, dataset)
                continue
            metric_tasks = _metric_tasks(getattr(loop, 'evaluator', None))
            self._check_eval(model_tasks, metric_tasks, data_tasks, dataset,
                             loader, evaluator_name)

    @staticmethod
    def _check_train(model_tasks: List[str], data_tasks: List[str],
                     dataset: Any) -> None:
        missing = [t for t in model_tasks if t not in data_tasks]
        if missing:
            raise UserError(
                f'train_dataloader: the training data ({_name(dataset)}) '
                f'gives labels for {data_tasks} only, so the head(s) of '
                f'{missing} would never be trained (the model has '
                f'{model_tasks}). Add {missing} to the data set\'s `tasks` '
                '(train_dataloader.dataset...tasks) or remove them from the '
                'model (model.encoder.tasks and model.head.task_heads)')

    @staticmethod
    def _check_eval(model_tasks: List[str], metric_tasks: List[str],
                    data_tasks: Optional[List[str]], dataset: Any,
                    loader: str, evaluator: str) -> None:
        extra = [t for t in metric_tasks if t not in model_tasks]
        if extra:
            raise UserError(
                f'{evaluator}: its MultiTaskMetric scores task(s) {extra} '
                f'that the model does not predict (the model has '
                f'{model_tasks}). Remove them from '
                f'{evaluator}.task_metrics (and from primary / reference / '
                'lower_is_better)')
        if data_tasks is not None:
            unlabelled = [t for t in metric_tasks if t not in data_tasks]
            if unlabelled:
                raise UserError(
                    f'{loader}: its data ({_name(dataset)}) gives labels '
                    f'for {data_tasks} only, but {evaluator} scores '
                    f'{unlabelled}. Add them to the data set\'s `tasks` or '
                    f'remove them from {evaluator}.task_metrics')


@HOOKS.register_module()
class ResumeValidationHook(Hook):
    """Validate a resumed step whose validation never finished.

    mmengine saves the checkpoint of step N before it validates step N, and
    resumes *after* N. A run stopped in between (``kill -9``, a crash)
    would never score step N on the probe split: its curve point and,
    where N was the best or the last step, its best checkpoint would be
    missing. After every finished validation of a training run this hook
    records the step in ``<work_dir>/.validated_step``; on resume at a
    validation step without that record it validates first.
    """
    priority = 'LOWEST'  # after CheckpointHook saved the best checkpoint
    MARK = '.validated_step'

    def _mark(self, runner: Any) -> str:
        return osp.join(runner.work_dir, self.MARK)

    @staticmethod
    def _step(runner: Any) -> tuple:
        from mmengine.runner import EpochBasedTrainLoop
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop):
            return runner.epoch, loop.max_epochs
        return runner.iter, loop.max_iters

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None
                        ) -> None:
        from mmengine.runner import BaseLoop
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # a stand-alone validation, not part of training
        if is_main_process():
            from branched_mtl.utils.io import write_text_atomic
            write_text_atomic(str(self._step(runner)[0]), self._mark(runner))

    def before_train(self, runner: Any) -> None:
        loop = runner.train_loop
        if runner.val_loop is None or not hasattr(loop, 'val_interval'):
            return
        step, max_steps = self._step(runner)
        if step <= 0 or step < loop.val_begin or not (
                step % loop.val_interval == 0 or step == max_steps):
            return
        try:
            with open(self._mark(runner)) as f:
                done = int(f.read().strip() or -1)
        except (OSError, ValueError):
            done = -1
        if done == step:
            return
        runner.logger.warning(
            f'the run stopped after the checkpoint of step {step} but '
            'before its validation finished; validating step '
            f'{step} now so its probe score and best checkpoint are not lost')
        runner.val_loop.run()
