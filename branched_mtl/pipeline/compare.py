"""Every way of deciding what layers to share, side by side on one config
(``tools/analysis/compare_methods.py``).

Per seed ``s`` (``<work_dir>/seed_<s>/``):

- ``single_task/<task>/`` and ``all_shared/``: trained once by a
  :class:`BranchJob` on the seed folder (the main job's stages, records in
  ``stages/``); every method below reuses them;
- ``rsa/``, ``tournament/``, ``tag/``: the main job with that affinity
  (:class:`MethodJob`: a :class:`BranchJob` whose single-task and all-shared
  stages are the shared ones), its tree and ``R`` random trees of the
  tree's size;
- ``ltb/``: ``projects/learning_to_branch/tools/search.py`` (subprocess),
  then its tree and ``R`` random trees of its size retrained like the
  others;
- ``adashare/``: ``projects/adashare/tools/search.py`` (subprocess), then
  the derived network retrained like the others.

Every model trains with the config's schedule and seed, keeps its best
probe checkpoint by MultiTaskMetric's ``score`` (Δm against the single-task
models' best probe values for multi-task models) and reads the test split
once: the main job's ``_train_and_test``. A finished method (its record in
``seed_<s>/compare/stages/`` with the same inputs) is not rerun; a method
that fails is recorded with its reason and the others go on.

Search cost, per method and seed (``seed_<s>/compare/cost.json``): wall
seconds and the process's CPU seconds (``getrusage`` of this process and its
waited-for children) of the stages that decide the architecture: the
single-task models + affinity + tree search for RSA and the tournament
(+ the recombination sweep), the TAG run + tree search for TAG, the
supergraph / policy search for Learning to Branch and AdaShare.
"""
import contextlib
import copy
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np
from mmengine.config import Config

from branched_mtl.tree import random_trees_like, tree_rng, validate_branches
from branched_mtl.tree.budget import is_flops_budget, parse_size_budget
from branched_mtl.utils import (UserError, dump_json_atomic,
                                write_text_atomic)
from branched_mtl.utils.lock import WorkDirLock
from branched_mtl.utils.package import PACKAGE_DIR
from .branch import BranchJob, config_text
from .compare_report import (LABELS, comparison_markdown, plot_comparison,
                             summarise)
from .compare_planted import planted_markdown, planted_scores
from .compare_sweep import plot_pareto, sweep_markdown
from .measure import input_shape, measure_model
from .stages import StageBook, fingerprint

AFFINITY = ('rsa', 'tournament', 'tag')
# TAG's own selection of separate networks, sized to the budget, from the
# affinity the 'tag' method measures
METHODS = ('single_task', 'all_shared') + AFFINITY + ('tag_groups', 'ltb',
                                                      'adashare')
# the search settings of the projects: kept out of the config the models
# train with, so that changing them reruns only that project's method
SEARCH_KEYS = dict(ltb='ltb', adashare='adashare')
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

    def _affinity(self, fp: str) -> str:
        own = self.book
        if self.affinity_dir:
            self.book = StageBook(self.affinity_dir)
        try:
            if self.book.done('affinity', fp) is not None and osp.isfile(
                    self._dir('affinity', 'affinity.json')):
                return super()._affinity(fp)
            with self.costs.measure(f'{self.affinity_method}/affinity'):
                return super()._affinity(fp)
        finally:
            self.book = own

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


class Comparison:
    """Runs every method on one config over seeds and writes the table.

    Args:
        config: The multi-task config (a ``BranchedMultiTaskModel`` with a
            ``BranchedEncoder``; ``ltb = dict(...)`` and ``adashare =
            dict(...)`` in it are the projects' search settings).
        work_dir: Where everything is written.
        seeds: The seeds, e.g. ``[0, 1, 2]``.
        budget: Size of the trees: parameters (``25M``, ``60%`` of the
            single-task models together) or FLOPs per image
            (``3.5GFLOPs``); Learning to Branch gets it as its budget,
            AdaShare as its size target.
        alpha: Complexity weight of the affinity trees instead of a budget.
        budgets: Several sizes (a budget sweep): every method runs at every
            budget; the single-task and all-shared models, and each
            affinity, are trained or measured once per seed for all of
            them. Method folders go to ``seed_<s>/budget_<b>/``.
        methods: Subset of :data:`METHODS` (the single-task models always
            train: they are every Δm's reference).
        random_trees: Random trees of each tree's size.
        cfg_options: Overrides merged into the config.
        log: Where progress lines go.
    """

    def __init__(self, config: str, work_dir: str, seeds: Sequence[int],
                 budget: Any = None, alpha: Optional[float] = None,
                 budgets: Optional[Sequence[str]] = None,
                 methods: Optional[Sequence[str]] = None,
                 random_trees: int = 1,
                 cfg_options: Optional[dict] = None,
                 log: Callable[[str], None] = print) -> None:
        if not osp.isfile(config):
            raise UserError(f'config file not found: {config}')
        self.work_dir = osp.abspath(work_dir)
        self.seeds = list(seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f'seeds must be distinct and non-empty, got '
                            f'{self.seeds}')
        methods = list(methods or METHODS)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise UserError(f'--methods: unknown method(s) {unknown}; known: '
                            f'{", ".join(METHODS)}')
        # the reference of every Δm
        self.methods = [m for m in METHODS
                        if m in methods or m == 'single_task']
        if budget is not None and budgets:
            raise UserError('give --budget or --budgets, not both')
        self.budgets = [str(b) for b in budgets] if budgets else (
            [] if budget is None else [budget])
        tags = [budget_tag(b) for b in self.budgets]
        if len(set(tags)) != len(tags):
            raise UserError(f'--budgets repeats a budget: {self.budgets}')
        if not self.budgets and alpha is None:
            raise UserError('give --budget (or --alpha for the affinity '
                            'trees)')
        if len(self.budgets) > 1 and alpha is not None:
            raise UserError('--alpha with several budgets: give one or the '
                            'other')
        if isinstance(random_trees, bool) or not isinstance(
                random_trees, int) or random_trees < 0:
            raise UserError(f'--random-trees must be a whole number >= 0, '
                            f'got {random_trees!r}')
        self.alpha = alpha
        # the budget being run and its folder tag (None: one budget, the
        # folders of a single comparison)
        self.budget_text = self.budgets[0] if self.budgets else None
        self.tag: Optional[str] = None
        self.random_trees = random_trees
        self.log = log
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.search_settings = {
            m: cfg.pop(key).to_dict() if hasattr(cfg.get(key), 'to_dict')
            else cfg.pop(key, None)
            for m, key in SEARCH_KEYS.items()}
        self.cfg = cfg
        self.source = osp.abspath(config)
        self.config = osp.join(self.work_dir, 'config.py')

    # ------------------------------------------------------------ setup
    def _write_configs(self) -> None:
        """``config.py``: the config every model trains with (the given
        one with --cfg-options, without the projects' search settings);
        ``<project>_config.py``: it plus that project's settings."""
        os.makedirs(self.work_dir, exist_ok=True)
        self._dump(self.cfg, self.config)
        for method, key in SEARCH_KEYS.items():
            cfg = copy.deepcopy(self.cfg)
            if self.search_settings[method] is not None:
                cfg[key] = self.search_settings[method]
            self._dump(cfg, osp.join(self.work_dir, f'{method}_config.py'))

    @staticmethod
    def _dump(cfg: Config, path: str) -> None:
        text = cfg.pretty_text
        if osp.isfile(path):
            with open(path) as f:
                if f.read() == text:
                    return  # unchanged: keep the file (and its time)
        write_text_atomic(text, path)

    def _score_planted(self, summary: Dict[str, Any],
                       per_seed: Dict[int, Dict[str, Any]],
                       job: BranchJob) -> None:
        """``summary['planted']`` where the config names planted groups."""
        groups = self.cfg.get('groups')
        if not groups:
            return
        summary['planted'] = planted_scores(
            per_seed, dict(groups), job.info['block_names'],
            lambda seed, method: self._seed_dir(seed, method, 'affinity',
                                                'affinity.json'))

    def _use_budget(self, budget: Optional[str]) -> None:
        self.budget_text = budget
        self.tag = (budget_tag(budget) if budget is not None
                    and len(self.budgets) > 1 else None)

    def _mdir(self, seed: int, method: str, *parts: str) -> str:
        """A method's folder at the budget being run."""
        return self._seed_dir(seed, *filter(None, [self.tag]), method,
                              *parts)

    def _key(self, name: str) -> str:
        """A record or cost name at the budget being run."""
        return f'{self.tag}/{name}' if self.tag else name

    def _shared_job(self, seed: int) -> BranchJob:
        # one per seed and budget, on the seed folder: they share the
        # single-task and all-shared records
        job = BranchJob(self.config, self._seed_dir(seed), alpha=self.alpha,
                        budget=self.budget_text, random_trees=0, seed=seed,
                        log=self.log)
        job._progress = NoProgress()
        return job

    def _seed_dir(self, seed: int, *parts: str) -> str:
        return osp.join(self.work_dir, f'seed_{seed}', *parts)

    # ------------------------------------------------------------ run
    def run(self) -> Dict[str, Any]:
        """Run (or resume) every method for every seed; write
        ``comparison.json``, ``comparison.md`` and ``comparison.png``.

        Returns:
            The summary (``comparison.json``).
        """
        with WorkDirLock(self.work_dir, option='--work-dir'):
            self._write_configs()
            # every seed's and budget's inputs checked before anything
            # trains
            budgets = self.budgets or [None]
            jobs = {}
            for b in budgets:
                self._use_budget(b)
                for s in self.seeds:
                    jobs[s, b] = self._shared_job(s)
            per_seed = {}
            for i, seed in enumerate(self.seeds):
                self.log(f'[compare] seed {seed} ({i + 1} of '
                         f'{len(self.seeds)})')
                per_seed[seed] = self._run_seed(
                    {b: jobs[seed, b] for b in budgets})
            first = jobs[self.seeds[0], budgets[0]]
            if len(budgets) == 1:
                self._use_budget(budgets[0])
                summary = summarise(per_seed, self.methods, first,
                                    self.random_trees)
                summary.update(config=self.source, work_dir=self.work_dir,
                               budget=self.budget_text, alpha=self.alpha,
                               seeds=self.seeds, budgets=self.budgets)
                self._score_planted(summary, per_seed, first)
                result = dict(summary, per_seed=per_seed)
            else:
                by_budget = {}
                for b in budgets:
                    self._use_budget(b)
                    views = {s: budget_view(rec, self.tag)
                             for s, rec in per_seed.items()}
                    by_budget[b] = dict(
                        summarise(views, self.methods, first,
                                  self.random_trees), budget=b)
                    self._score_planted(by_budget[b], views, first)
                summary = dict(config=self.source, work_dir=self.work_dir,
                               seeds=self.seeds, budgets=self.budgets,
                               random_trees=self.random_trees,
                               by_budget=by_budget)
                result = dict(summary, per_seed=per_seed)
            dump_json_atomic(result,
                             osp.join(self.work_dir, 'comparison.json'))
            png = osp.join(self.work_dir, 'comparison.png')
            if len(budgets) == 1:
                plot_comparison(summary, png)
                text = comparison_markdown(summary, png)
                if 'planted' in summary:
                    text += '\n## Against the planted groups\n\n' + \
                        planted_markdown(summary['planted'], LABELS) + '\n'
            else:
                plot_pareto(summary, png)
                text = sweep_markdown(summary, png)
                for b, part in summary['by_budget'].items():
                    if 'planted' in part:
                        text += (f'\n## Against the planted groups, budget '
                                 f'`{b}`\n\n' + planted_markdown(
                                     part['planted'], LABELS) + '\n')
            write_text_atomic(text,
                              osp.join(self.work_dir, 'comparison.md'))
            self.log(text)
            self.log(f'[compare] {osp.join(self.work_dir, "comparison.md")}')
            return summary

    def _run_seed(self, jobs: Dict[Optional[str], BranchJob]
                  ) -> Dict[str, Any]:
        """One seed: the references once, then every method at every
        budget (``jobs``: the seed's job per budget)."""
        shared = next(iter(jobs.values()))
        seed = shared.seed
        costs = CostBook(self._seed_dir(seed, 'compare'))
        book = StageBook(self._seed_dir(seed, 'compare'))
        shape = input_shape(shared.cfg)
        out: Dict[str, Any] = {}
        # the references: failures here end the comparison (no Δm without)
        self.log('[compare] single-task models')
        for task in shared.tasks:
            name, cfg, fp = single_task_stage(shared, task)
            if shared.book.done(name, fp) is None:
                with costs.measure(name):
                    shared.results[name] = shared._train_and_test(
                        name, cfg, shared._dir('single_task', task), fp)
            else:
                shared.results[name] = shared.book.done(name, fp)
        out['single_task'] = self._method(
            book, 'single_task', seed, lambda: dict(models={
                f'single_task/{t}': measure_result(
                    shared.results[f'single_task/{t}'], shape)
                for t in shared.tasks}, cost=None))
        if 'all_shared' in self.methods:
            out['all_shared'] = self._method(
                book, 'all_shared', seed,
                lambda: self._all_shared(shared, shape))
        if len(jobs) == 1:
            self._use_budget(next(iter(jobs)))
            out.update(self._run_methods(shared, book, costs, shape))
            return out
        out['budgets'] = {}
        for budget, job in jobs.items():
            self._use_budget(budget)
            self.log(f'[compare] budget {budget}')
            out['budgets'][self.tag] = self._run_methods(job, book, costs,
                                                         shape)
        return out

    def _run_methods(self, shared: BranchJob, book: StageBook,
                     costs: CostBook, shape: tuple) -> Dict[str, Any]:
        """Every method but the references, at the budget being run."""
        seed = shared.seed
        out: Dict[str, Any] = {}
        for method in self.methods:
            if method in SHARED_STAGES:
                continue
            if method in AFFINITY:
                out[method] = self._method(
                    book, method, seed,
                    lambda m=method: self._affinity_method(
                        shared, m, costs, shape))
            elif method == 'tag_groups':
                out[method] = self._method(
                    book, method, seed,
                    lambda: self._tag_groups(shared, costs, shape))
            elif method == 'ltb':
                out[method] = self._method(
                    book, method, seed,
                    lambda: self._ltb(shared, costs, shape))
            elif method == 'adashare':
                out[method] = self._method(
                    book, method, seed,
                    lambda: self._adashare(shared, costs, shape))
        return out

    def _inputs(self, method: str, seed: int) -> str:
        """What a method's result depends on: a changed input reruns it."""
        settings: List[Any] = []
        if method in AFFINITY or method == 'tag_groups':
            settings = [self.cfg.get('branch'), self.alpha, self.budget_text,
                        self.random_trees]
        elif method in SEARCH_KEYS:
            settings = [self.search_settings[method], self.budget_text,
                        self.random_trees]
        return fingerprint('compare', method, seed, config_text(self.cfg),
                           *settings)

    def _method(self, book: StageBook, method: str, seed: int,
                run: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """One method of one seed: its record if it finished with these
        inputs, else run it; a failure is recorded, not raised."""
        fp = self._inputs(method, seed)
        key = method if method in SHARED_STAGES else self._key(method)
        done = book.done(key, fp)
        if done is not None:
            self.log(f'[compare] {LABELS[method]}: done earlier, skipped')
            return done
        self.log(f'[compare] {LABELS[method]}')
        failed_path = osp.join(self._seed_dir(seed, 'compare'),
                               'failed', key.replace('/', '__') + '.json')
        try:
            result = dict(status='done', **run())
        except Exception as e:  # noqa: B902  (recorded, the rest go on)
            if method == 'single_task':
                raise
            reason = f'{type(e).__name__}: {e}'
            self.log(f'[compare] {LABELS[method]} FAILED: {reason}')
            failed = dict(status='failed', reason=reason)
            dump_json_atomic(failed, failed_path)
            return failed
        if osp.isfile(failed_path):
            os.remove(failed_path)
        book.finish(key, fp, result)
        return result

    # ------------------------------------------------------------ methods
    def _all_shared(self, shared: BranchJob, shape: tuple) -> Dict:
        from branched_mtl.tree import all_shared
        cfg = shared._with_tree(None)
        nb = len(shared.info['block_names'])
        result = shared._train_and_test(
            'all_shared', cfg, shared._dir('all_shared'),
            fingerprint('all_shared', shared.seed, config_text(cfg)),
            dict(branches=all_shared(shared.tasks, nb)))
        shared.results['all_shared'] = result
        return dict(models=dict(all_shared=measure_result(result, shape)),
                    cost=None)

    def _affinity_method(self, shared: BranchJob, method: str,
                         costs: CostBook, shape: tuple) -> Dict:
        job = MethodJob(shared, costs, self.config,
                        self._mdir(shared.seed, method),
                        affinity=method, alpha=self.alpha,
                        budget=self.budget_text,
                        random_trees=self.random_trees, seed=shared.seed,
                        log=self.log,
                        affinity_dir=(self._seed_dir(shared.seed, method)
                                      if self.tag else None),
                        cost_prefix=self.tag)
        job.run()
        models = {'tree': measure_result(job.results['branched'], shape)}
        # fewer than R where the tree has fewer relabellings
        for name in sorted(k for k in job.results
                           if k.startswith('random/')):
            models[name] = measure_result(job.results[name], shape)
        # TAG's affinity needs no single-task models
        keys = ([] if method == 'tag' else
                [f'single_task/{t}' for t in shared.tasks])
        keys += [f'{method}/affinity', self._key(f'{method}/tree')]
        return dict(models=models, cost=costs.total(keys),
                    report=osp.join(job.work_dir, 'report.md'))

    def _size_args(self, shared: BranchJob, params: str,
                   flops: str) -> List[str]:
        """The budget as a project tool's size option: parameters (a
        percentage resolved against the single-task models, as the
        affinity trees read it) or FLOPs per image."""
        if self.budget_text is None:
            return []
        if is_flops_budget(self.budget_text):
            return [flops, str(parse_size_budget(self.budget_text).value)]
        return [params, str(int(shared.budget))]

    def _search(self, shared: BranchJob, method: str, project: str,
                costs: CostBook, extra: List[str], record: str) -> dict:
        """Run a project's search tool once per seed (kept when done with
        the same inputs); returns its record."""
        folder = self._mdir(shared.seed, method, 'search')
        book = StageBook(self._mdir(shared.seed, method))
        fp = fingerprint('search', self._inputs(method, shared.seed), extra)
        done = book.done('search', fp)
        if done is not None and osp.isfile(done['record']):
            with open(done['record']) as f:
                return json.load(f)
        if book.stale('search', fp):
            book.reset('search', folder)
        cmd = [sys.executable, project_tool(project),
               osp.join(self.work_dir, f'{method}_config.py'),
               '--work-dir', folder, '--seed', str(shared.seed)] + extra
        with costs.measure(self._key(f'{method}/search')):
            _run_tool(cmd, folder)
        path = osp.join(folder, record)
        if not osp.isfile(path):
            raise UserError(f'{project} search left no {path}')
        book.finish('search', fp, dict(record=path))
        with open(path) as f:
            return json.load(f)

    def _ltb(self, shared: BranchJob, costs: CostBook, shape: tuple) -> Dict:
        size = self._size_args(shared, '--budget', '--flops-budget')
        record = self._search(shared, 'ltb', 'learning_to_branch', costs,
                              size, 'search.json')
        branches = validate_branches(record['branches'], shared.tasks,
                                     len(shared.info['block_names']))
        search_fp = fingerprint(record['branches'], size)
        models = {}
        cfg = shared._with_tree(branches)
        models['tree'] = measure_result(shared._train_and_test(
            self._key('ltb/tree'), cfg, self._mdir(shared.seed, 'ltb',
                                                   'tree'),
            fingerprint('ltb', search_fp, shared.seed, config_text(cfg)),
            dict(branches=branches)), shape)
        # the main job's random trees: distinct relabellings of the tree,
        # drawn from the seed and the tree's shape like every method's
        randoms = random_trees_like(
            branches, shared.tasks, self.random_trees,
            tree_rng(shared.seed, branches, shared.tasks))
        for k, rand in enumerate(randoms):
            cfg = shared._with_tree(rand)
            models[f'random/{k}'] = measure_result(shared._train_and_test(
                self._key(f'ltb/random/{k}'), cfg,
                self._mdir(shared.seed, 'ltb', 'random', str(k)),
                fingerprint('ltb_random', search_fp, k, shared.seed,
                            config_text(cfg)), dict(branches=rand)), shape)
        return dict(models=models,
                    cost=costs.total([self._key('ltb/search')]),
                    search=dict(branches=branches,
                                record=osp.join(self._mdir(
                                    shared.seed, 'ltb', 'search'),
                                    'search.json')))

    def _tag_groups(self, shared: BranchJob, costs: CostBook,
                    shape: tuple) -> Dict:
        """TAG's own selection: the most separate networks (disjoint
        groups, from the input on) that fit the budget, chosen by size
        alone, from the TAG method's lookahead affinity of this seed."""
        from branched_mtl.affinity.tag import (select_tag_groups,
                                               tag_groups_to_branches,
                                               tag_lookahead)
        from branched_mtl.affinity import load_affinity
        from branched_mtl.tree import count_tree_params
        path = self._seed_dir(shared.seed, 'tag', 'affinity', 'affinity.json')
        if 'tag' not in self.methods or not osp.isfile(path):
            raise UserError('tag_groups selects from the TAG method\'s '
                            f'affinity ({path}): run it with tag in '
                            '--methods')
        if not isinstance(shared.budget, int):
            raise UserError('tag_groups is sized by a parameter budget '
                            f'(25M, 60%), got {self.budget_text!r}')
        doc = load_affinity(path)
        idx = [doc['tasks'].index(t) for t in shared.tasks]
        # the deepest split: the whole encoder's lookahead, as TAG selects
        z = tag_lookahead(doc, path)[-1][np.ix_(idx, idx)]
        nb = len(shared.info['block_names'])
        bp, hp = shared.info['block_params'], shared.info['head_params']
        chosen = None
        with costs.measure(self._key('tag_groups/tree')):
            for k in range(len(shared.tasks), 0, -1):
                sel = select_tag_groups(z, shared.tasks, k, disjoint=True)
                branches = tag_groups_to_branches(sel, shared.tasks, nb)
                if count_tree_params(branches, bp, hp) <= shared.budget:
                    chosen = (k, sel, branches)
                    break
        if chosen is None:  # pragma: no cover - one network always fits
            raise UserError(f'no TAG selection fits {self.budget_text!r}')
        k, sel, branches = chosen
        fp = fingerprint('tag_groups', branches, shared.seed)
        models = {}
        cfg = shared._with_tree(branches)
        models['tree'] = measure_result(shared._train_and_test(
            self._key('tag_groups/tree'), cfg,
            self._mdir(shared.seed, 'tag_groups', 'tree'),
            fingerprint(fp, config_text(cfg)), dict(branches=branches)),
            shape)
        randoms = random_trees_like(
            branches, shared.tasks, self.random_trees,
            tree_rng(shared.seed, branches, shared.tasks))
        for i, rand in enumerate(randoms):
            cfg = shared._with_tree(rand)
            models[f'random/{i}'] = measure_result(shared._train_and_test(
                self._key(f'tag_groups/random/{i}'), cfg,
                self._mdir(shared.seed, 'tag_groups', 'random', str(i)),
                fingerprint(fp, i, config_text(cfg)), dict(branches=rand)),
                shape)
        return dict(models=models,
                    cost=costs.total(['tag/affinity',
                                      self._key('tag_groups/tree')]),
                    search=dict(branches=branches, max_groups=k,
                                networks=len(branches[0]),
                                score=sel['score']))

    def _adashare(self, shared: BranchJob, costs: CostBook,
                  shape: tuple) -> Dict:
        root = checkout_root()
        if root not in sys.path:
            # the derived config imports projects.adashare.adashare
            sys.path.insert(0, root)
        size = self._size_args(shared, '--params-target', '--flops-target')
        record = self._search(shared, 'adashare', 'adashare', costs, size,
                              'search.json')
        derived = Config.fromfile(record['config'])
        cfg = copy.deepcopy(shared.cfg)
        # only the architecture comes from the search: the schedule, data
        # and selection rule are those of every other model
        cfg.model.encoder = derived.model.encoder.to_dict()
        imports = list((cfg.get('custom_imports') or {}).get('imports', []))
        for module in (derived.get('custom_imports') or {}).get(
                'imports', []):
            if module not in imports:
                imports.append(module)
        cfg.custom_imports = dict(imports=imports,
                                  allow_failed_imports=False)
        cfg = shared._select_multi_task(cfg)
        result = shared._train_and_test(
            self._key('adashare/model'), cfg,
            self._mdir(shared.seed, 'adashare', 'model'),
            fingerprint('adashare', record['policy'], shared.seed,
                        config_text(cfg)), dict(policy=record['policy']))
        return dict(models=dict(model=measure_result(result, shape)),
                    cost=costs.total([self._key('adashare/search')]),
                    search=dict(policy=record['policy'],
                                size_target_met=record.get(
                                    'size_target_met')))


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
