"""The pieces a comparison is made of (:mod:`.compare`): the affinity
method's job on a seed's shared models, budget folders, and one trained
model measured.
"""
import os.path as osp
from typing import Any, Dict, Optional, Sequence, Tuple

from mmengine.config import Config

from .branch import BranchJob, config_text
from .costs import CostBook
from .measure import measure_model
from .stages import StageBook, fingerprint

# the stages every method of a seed shares
SHARED_STAGES = ('single_task', 'all_shared')


def budget_tag(budget: str) -> str:
    """A budget's folder name, e.g. ``60%`` -> ``budget_60pct``."""
    text = str(budget).strip().replace('%', 'pct')
    safe = ''.join(c if c.isalnum() or c in '.-_' else '_' for c in text)
    return f'budget_{safe}'


def budget_view(record: Dict[str, Any], tag: str) -> Dict[str, Any]:
    """A seed's record of a budget sweep seen as a one-budget comparison:
    the references plus that budget's methods."""
    view = {k: v for k, v in record.items() if k != 'budgets'}
    view.update(record.get('budgets', {}).get(tag, {}))
    return view


class NoProgress:
    """Stands in for a job's progress display where its stages run outside
    its own ``run()`` (each caller logs its own lines): every call is a
    no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class MethodJob(BranchJob):
    """The main job with one affinity method, whose single-task and
    all-shared stages are those of ``shared`` (same config and seed, so the
    same models: trained once per seed for every method).

    Args:
        shared: The seed's :class:`BranchJob` that owns the single-task and
            all-shared models.
        costs: Where the affinity and tree stages' cost goes.
        **kwargs: :class:`BranchJob`'s arguments.
    """

    def __init__(self, shared: BranchJob, costs: CostBook,
                 *args: Any, affinity_dir: Optional[str] = None,
                 cost_prefix: Optional[str] = None,
                 affinity_budgets: Optional[Sequence[str]] = None,
                 **kwargs: Any) -> None:
        self.shared = shared
        self.costs = costs
        # a budget sweep measures each affinity once per seed: the
        # affinity and its record live in ``affinity_dir`` for every budget
        self.affinity_dir = affinity_dir
        self.cost_prefix = cost_prefix
        super().__init__(*args, **kwargs)
        # a tree another method (or a random tree) trained at this seed is
        # found as the same model
        self.twin_root = shared.twin_root
        # ... and for every budget of the sweep at once (a measurement
        # that depends on the budget covers the widest one)
        self.affinity_budgets = ([self.read_budget(b) for b in
                                  affinity_budgets]
                                 if affinity_budgets else None)

    def folder(self, *parts: str) -> str:
        # the affinity readers (RSA probes, the sweep's --single-task-dir)
        # find the shared single-task models here
        if parts and parts[0] in SHARED_STAGES:
            return self.shared.folder(*parts)
        if parts and parts[0] == 'affinity' and self.affinity_dir:
            return osp.join(self.affinity_dir, *parts)
        return super().folder(*parts)

    def owns(self, name: str) -> bool:
        # the shared job records (and trains) the shared stages
        return name.split('/')[0] not in SHARED_STAGES

    def train_and_test(self, name: str, cfg: Config, folder: str,
                        fp: str, extra: Optional[dict] = None) -> dict:
        if not self.owns(name):
            return self.shared.train_and_test(name, cfg, folder, fp, extra)
        return super().train_and_test(name, cfg, folder, fp, extra)

    def _affinity_book(self) -> StageBook:
        return (StageBook(self.affinity_dir) if self.affinity_dir
                else self.book)

    def _affinity(self, fp: str) -> str:
        if self._affinity_book().done('affinity', fp) is not None and \
                osp.isfile(self.folder('affinity', 'affinity.json')):
            return super()._affinity(fp)
        with self.costs.measure(f'{self.affinity_method}/affinity'):
            return super()._affinity(fp)

    def _tree(self, fp: str, affinity_path: str) -> dict:
        if self.book.done('tree', fp) is not None and osp.isfile(
                self.folder('tree', 'branched.py')):
            return super()._tree(fp, affinity_path)
        key = '/'.join(filter(None, [self.cost_prefix, self.affinity_method,
                                     'tree']))
        with self.costs.measure(key):
            return super()._tree(fp, affinity_path)


def single_task_stage(job: BranchJob, task: str) -> Tuple[str, Config, str]:
    """The main job's single-task stage of ``task``: its name, config and
    fingerprint (the same as ``BranchJob`` computes, so the same model).

    Args:
        job: The job whose config, seed and probe settings it takes.
        task: The task.
    """
    from branched_mtl.apis import add_affinity_hook, single_task_config
    from .selection import set_selection
    # AffinityHook included: it runs after training and changes nothing in
    # it, and the main job's fingerprint covers it
    cfg = set_selection(add_affinity_hook(
        single_task_config(job.cfg, task), **job.probe_settings()))
    return (f'single_task/{task}', cfg,
            fingerprint('single_task', job.seed, config_text(cfg)))


def train_single_task(job: BranchJob, task: str, tag: str) -> dict:
    """Train (or find done) ``task``'s single-task model as the main job
    does, into ``job.results``.

    Args:
        job: The job that trains it (in ``<work_dir>/single_task/<task>``).
        task: The task.
        tag: The log line's prefix (the tool's name).

    Returns:
        The model's result (checkpoint, config, test metrics, ...).
    """
    job.log(f'[{tag}] single_task/{task}')
    name, cfg, fp = single_task_stage(job, task)
    job.results[name] = job.train_and_test(
        name, cfg, job.folder('single_task', task), fp)
    return job.results[name]


def share_single_task(jobs: Sequence[BranchJob], costs: CostBook) -> None:
    """Train (or find done) every single-task model once, on the first job,
    and give their results to every job (one per budget of a sweep), which
    selects its models' checkpoints by Δm against them.

    Args:
        jobs: The seed's jobs; the first trains.
        costs: Where each training's wall and CPU seconds go.
    """
    first = jobs[0]
    for task in first.tasks:
        name, cfg, fp = single_task_stage(first, task)
        done = first.book.done(name, fp)
        if done is None:
            with costs.measure(name):
                done = first.train_and_test(
                    name, cfg, first.folder('single_task', task), fp)
        for job in jobs:
            job.results[name] = done


def train_all_shared(shared: BranchJob, shape: tuple) -> Dict[str, Any]:
    """Train (or find done) the seed's all-shared model, the other end of
    every budget sweep, and measure it.

    Args:
        shared: The seed's job that owns the references.
        shape: Input shape for FLOPs and throughput.

    Returns:
        ``{'models': {'all_shared': ...}, 'cost': None}``.
    """
    from branched_mtl.tree import all_shared
    cfg = shared.with_tree(None)
    nb = len(shared.info['block_names'])
    result = shared.train_and_test(
        'all_shared', cfg, shared.folder('all_shared'),
        fingerprint('all_shared', shared.seed, config_text(cfg)),
        dict(branches=all_shared(shared.tasks, nb)))
    shared.results['all_shared'] = result
    return dict(models=dict(all_shared=measure_result(result, shape)),
                cost=None)


def measure_result(result: Dict[str, Any], shape: tuple) -> Dict[str, Any]:
    """A trained model's test metrics, parameters, FLOPs (mmengine's
    complexity analysis) and measured CPU throughput."""
    cfg = Config.fromfile(result['config'])
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    size = measure_model(cfg, shape)
    return dict(metrics=dict(result['metrics']), config=result['config'],
                checkpoint=result['checkpoint'],
                branches=result.get('branches'), **size)
