"""The pieces a comparison is made of (:mod:`.compare`): the affinity
method's job on a seed's shared models, the search-cost book, budget
folders, a project tool's path and run, and one trained model measured.
"""
import contextlib
import json
import os
import os.path as osp
import resource
import subprocess
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

from branched_mtl.utils import UserError, dump_json_atomic
from branched_mtl.utils.package import PACKAGE_DIR
from .branch import BranchJob, config_text
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


def checkout_root() -> str:
    """The checkout that holds ``projects/`` (the projects are not part of
    the installed package)."""
    return osp.dirname(PACKAGE_DIR)


def project_tool(name: str) -> str:
    """``projects/<name>/tools/search.py`` of the checkout.

    Raises:
        UserError: when the checkout has no such project.
    """
    path = osp.join(checkout_root(), 'projects', name, 'tools', 'search.py')
    if not osp.isfile(path):
        raise UserError(f'{path} not found: the {name} project lives in the '
                        'branched_mtl checkout (projects/), not in an '
                        'installed package')
    return path


# ---------------------------------------------------------------- cost
def _rusage_cpu() -> float:
    """CPU seconds (user + system) of this process and of its children that
    ended and were waited for (subprocesses, data loader workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        use = resource.getrusage(who)
        total += use.ru_utime + use.ru_stime
    return total


def _device() -> str:
    import torch
    if torch.cuda.is_available():
        return f'GPU ({torch.cuda.get_device_name(0)})'
    return f'CPU ({torch.get_num_threads()} threads)'


class CostBook:
    """Wall and CPU seconds of the stages that decide an architecture, in
    ``<folder>/cost.json`` (written atomically after each measured stage).

    Args:
        folder: Where ``cost.json`` lives.
    """

    def __init__(self, folder: str) -> None:
        self.path = osp.join(folder, 'cost.json')
        self.parts: Dict[str, Dict[str, Any]] = {}
        if osp.isfile(self.path):
            with open(self.path) as f:
                self.parts = json.load(f)

    @contextlib.contextmanager
    def measure(self, key: str) -> Iterator[None]:
        """Record the block's wall and CPU seconds as part ``key`` (only
        when it finishes: a failed stage leaves the earlier record)."""
        wall, cpu = time.perf_counter(), _rusage_cpu()
        yield
        wall, cpu = time.perf_counter() - wall, _rusage_cpu() - cpu
        device = _device()
        part = dict(wall_s=wall, cpu_s=cpu, device=device)
        if device.startswith('GPU'):
            # one device per run here (launcher none)
            part['gpu_s'] = wall
        self.parts[key] = part
        dump_json_atomic(self.parts, self.path)

    def total(self, keys: Sequence[str]) -> Dict[str, Any]:
        """The sum over ``keys``; ``missing`` names parts never measured
        (e.g. a stage finished by an older run)."""
        have = [self.parts[k] for k in keys if k in self.parts]
        return dict(
            wall_s=sum(p['wall_s'] for p in have),
            cpu_s=sum(p['cpu_s'] for p in have),
            gpu_s=sum(p.get('gpu_s', 0.0) for p in have),
            devices=sorted({p['device'] for p in have}),
            parts=list(keys),
            missing=[k for k in keys if k not in self.parts])


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
                 cost_prefix: Optional[str] = None, **kwargs: Any) -> None:
        self.shared = shared
        self.costs = costs
        # a budget sweep measures each affinity once per seed: the
        # affinity and its record live in ``affinity_dir`` for every budget
        self.affinity_dir = affinity_dir
        self.cost_prefix = cost_prefix
        super().__init__(*args, **kwargs)

    def _dir(self, *parts: str) -> str:
        # the affinity readers (RSA probes, the sweep's --single-task-dir)
        # find the shared single-task models here
        if parts and parts[0] in SHARED_STAGES:
            return self.shared._dir(*parts)
        if parts and parts[0] == 'affinity' and self.affinity_dir:
            return osp.join(self.affinity_dir, *parts)
        return super()._dir(*parts)

    def _train_and_test(self, name: str, cfg: Config, folder: str,
                        fp: str, extra: Optional[dict] = None) -> dict:
        if name.split('/')[0] in SHARED_STAGES:
            return self.shared._train_and_test(name, cfg, folder, fp, extra)
        return super()._train_and_test(name, cfg, folder, fp, extra)

    def _affinity_book(self) -> StageBook:
        return (StageBook(self.affinity_dir) if self.affinity_dir
                else self.book)

    def _affinity(self, fp: str) -> str:
        if self._affinity_book().done('affinity', fp) is not None and \
                osp.isfile(self._dir('affinity', 'affinity.json')):
            return super()._affinity(fp)
        with self.costs.measure(f'{self.affinity_method}/affinity'):
            return super()._affinity(fp)

    def _tree(self, fp: str, affinity_path: str) -> dict:
        if self.book.done('tree', fp) is not None and osp.isfile(
                self._dir('tree', 'branched.py')):
            return super()._tree(fp, affinity_path)
        key = '/'.join(filter(None, [self.cost_prefix, self.affinity_method,
                                     'tree']))
        with self.costs.measure(key):
            return super()._tree(fp, affinity_path)


def _run_tool(cmd: List[str], folder: str) -> None:
    """A project's search tool, its output in ``<folder>/console.log``.

    Raises:
        UserError: with the end of its output when it fails.
    """
    os.makedirs(folder, exist_ok=True)
    log = osp.join(folder, 'console.log')
    with open(log, 'ab') as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                              cwd=checkout_root()).returncode
    if code != 0:
        with open(log, 'rb') as f:
            tail = f.read().decode(errors='replace').strip().splitlines()
        last = [line for line in tail if line.strip()][-3:]
        raise UserError(f'`{osp.relpath(cmd[1], checkout_root())}` failed '
                        f'(exit {code}): ' + ' / '.join(last) +
                        f' (all of it in {log})')


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
        single_task_config(job.cfg, task), **job._probe()))
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
    job.results[name] = job._train_and_test(
        name, cfg, job._dir('single_task', task), fp)
    return job.results[name]


def measure_result(result: Dict[str, Any], shape: tuple) -> Dict[str, Any]:
    """A trained model's test metrics, parameters, FLOPs (mmengine's
    complexity analysis) and measured CPU throughput."""
    cfg = Config.fromfile(result['config'])
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    size = measure_model(cfg, result['checkpoint'], shape)
    return dict(metrics=dict(result['metrics']), config=result['config'],
                checkpoint=result['checkpoint'],
                branches=result.get('branches'), **size)
