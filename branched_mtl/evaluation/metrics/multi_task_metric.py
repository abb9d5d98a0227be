"""MultiTaskMetric: every task's stock metrics plus the paper's Δm."""
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric

from branched_mtl.registry import METRICS, build_stock
from branched_mtl.utils.config import type_name


def multi_task_metrics(evaluator: Any) -> List[dict]:
    """The MultiTaskMetric configs inside an evaluator config (a metric, a
    list of them, or an Evaluator config with ``metrics``)."""
    if isinstance(evaluator, (list, tuple)):
        return [m for item in evaluator for m in multi_task_metrics(item)]
    if not isinstance(evaluator, dict):
        return []
    if 'metrics' in evaluator:
        return multi_task_metrics(evaluator['metrics'])
    return [evaluator] if type_name(evaluator) == 'MultiTaskMetric' else []


def delta_m(results: Dict[str, float], reference: Dict[str, float],
            lower_is_better: Sequence[str] = ()) -> float:
    """Multi-task performance Δm against single-task references, in %.

    Δm = (1/T) Σ_t (-1)^{l_t} (M_t - M_ref,t) / M_ref,t, with l_t = 1 where
    lower is better.

    Args:
        results: ``{key: value}`` of the multi-task model.
        reference: ``{key: value}`` of the single-task models (one key per
            task).
        lower_is_better: Keys where a lower value is better.

    Returns:
        Δm in percent.
    """
    if not reference:
        raise ValueError('delta_m needs at least one reference value')
    terms = []
    for key, ref in reference.items():
        if key not in results:
            raise KeyError(f'delta_m: no result for reference key {key!r}; '
                           f'results have {sorted(results)}')
        if ref == 0:
            raise ValueError(f'delta_m: reference value of {key!r} is 0')
        sign = -1.0 if key in lower_is_better else 1.0
        terms.append(sign * (results[key] - ref) / abs(ref))
    return 100.0 * sum(terms) / len(terms)


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Per-task stock metrics (mmpretrain ``Accuracy``, mmseg ``IoUMetric``
    ...) on each task's sub-sample, and Δm against reference values.

    Results are named ``<task>/<stock key>``, e.g. ``left/accuracy/top1``.
    ``score`` is the one number every model of a comparison is selected by
    (best checkpoint, early stopping; higher is better): ``delta_m`` when
    references are given, else the mean over tasks of the primary metrics,
    negated where lower is better (for one task: its primary metric, so
    that the best single-task checkpoint is also the best by Δm against any
    reference).

    Args:
        task_metrics: ``{task: metric config or list of configs}``.
        primary: ``{task: stock key}`` of the metric Δm uses (default: the
            first key a task's metrics return).
        reference: ``{task: single-task value of its primary metric}``; when
            given, ``delta_m`` (in %) is reported.
        lower_is_better: Tasks whose primary metric is better when lower.
        collect_device: As in :class:`BaseMetric`.
        prefix: As in :class:`BaseMetric`.
    """
    # keys already carry the task name; no extra prefix
    default_prefix: Optional[str] = ''

    def __init__(self,
                 task_metrics: Dict[str, object],
                 primary: Optional[Dict[str, str]] = None,
                 reference: Optional[Dict[str, float]] = None,
                 lower_is_better: Sequence[str] = (),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tasks = list(task_metrics)
        for name, value in (('primary', primary), ('reference', reference)):
            unknown = set(value or {}) - set(self.tasks)
            if unknown:
                raise ValueError(f'MultiTaskMetric: {name} names unknown '
                                 f'task(s) {sorted(unknown)}')
        self.primary = dict(primary or {})
        self.reference = dict(reference or {})
        self.lower_is_better = list(lower_is_better)
        self._metrics: Dict[str, List[BaseMetric]] = {}
        for task, cfgs in task_metrics.items():
            cfgs = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
            self._metrics[task] = [build_stock(c, METRICS) for c in cfgs]

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        # the stock per-task metrics need it too (e.g. IoUMetric's classes)
        self._dataset_meta = meta
        for metrics in getattr(self, '_metrics', {}).values():
            for metric in metrics:
                metric.dataset_meta = meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for task, metrics in self._metrics.items():
            samples = [s[task] for s in data_samples if task in s]
            for metric in metrics:
                try:
                    metric.process(data_batch, samples)
                except KeyError as e:
                    # a labelled sample without the prediction the stock
                    # metric reads: the model has no head for this task
                    from branched_mtl.utils.errors import UserError
                    raise UserError(
                        f'MultiTaskMetric: task {task!r} has no prediction '
                        f'{e} to score ({type(metric).__name__}); the model '
                        f'does not predict {task!r}? Make the evaluator\'s '
                        'task_metrics list only the model\'s tasks') from e

    def compute_metrics(self, results: list) -> dict:  # pragma: no cover
        # evaluate() below reduces each stock metric itself
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        out = {}
        for task, metrics in self._metrics.items():
            task_out = {}
            for metric in metrics:
                # the stock metric gathers across ranks itself
                task_out.update(metric.evaluate(size))
            if not task_out:
                continue
            self.primary.setdefault(task, next(iter(task_out)))
            for key, value in task_out.items():
                out[f'{task}/{key}'] = float(value)
        lower = [f'{t}/{self.primary[t]}' for t in self.lower_is_better
                 if t in self.primary]
        if self.reference:
            ref = {f'{t}/{self.primary[t]}': v
                   for t, v in self.reference.items()}
            out['delta_m'] = delta_m(out, ref, lower)
            out['score'] = out['delta_m']
        else:
            signed = [(-1.0 if key in lower else 1.0) * out[key]
                      for key in (f'{t}/{self.primary[t]}'
                                  for t in self.tasks if t in self.primary)]
            if signed:
                out['score'] = float(sum(signed) / len(signed))
        return out
