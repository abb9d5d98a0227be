"""Every way of deciding what layers to share, side by side on one config
(``tools/analysis/compare_methods.py``).

Per seed ``s`` (``<work_dir>/seed_<s>/``):

- ``single_task/<task>/`` and ``all_shared/``: trained once by a
  :class:`BranchJob` on the seed folder (the main job's stages, records in
  ``stages/``); every method below reuses them;
- ``<method>/``, for every method of :data:`branched_mtl.registry.METHODS`
  asked for: an affinity method (``rsa``, ``tournament``, ``tag``) runs the
  main job with that affinity (:class:`MethodJob`: a :class:`BranchJob`
  whose single-task and all-shared stages are the shared ones), its tree
  and ``R`` random trees of the tree's size; any other method decides
  (:meth:`BaseMethod.decide`: TAG's own selection, and the projects'
  methods registered through the config's ``custom_imports``) a tree, which
  trains with ``R`` random trees of its size, or a derived network, which
  trains once.

Every model trains with the config's schedule and seed, keeps its best
probe checkpoint by MultiTaskMetric's ``score`` (Δm against the single-task
models' best probe values for multi-task models) and reads the test split
once: the stage runner's ``train_and_test``. A finished method (its record in
``seed_<s>/compare/stages/`` with the same inputs) is not rerun; a method
that fails is recorded with its reason and the others go on.

Search cost, per method and seed (``seed_<s>/compare/cost.json``): wall
seconds and the process's CPU seconds (``getrusage`` of this process and its
waited-for children) of the stages that decide the architecture: the
single-task models + affinity + tree search for RSA and the tournament
(+ the recombination sweep), the TAG run + tree search for TAG, and what a
method's ``Decision.cost_keys`` name for the others (a project's search).
"""
import copy
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmengine.config import Config

from branched_mtl.tree import random_trees_like, tree_rng, validate_branches
from branched_mtl.utils import UserError, dump_json_atomic
from branched_mtl.utils.config import result_settings
from branched_mtl.utils.lock import WorkDirLock
from .branch import BranchJob, config_text
from .compare_affinity import separation_scores
from .compare_jobs import (SHARED_STAGES, CostBook, MethodJob, NoProgress,
                           budget_tag, budget_view, measure_result,
                           share_single_task, train_all_shared)
from .compare_output import write_configs, write_outputs
from .compare_planted import planted_scores
from .compare_report import summarise
from .measure import input_shape
from .methods import (REFERENCES, AffinityMethod, BaseMethod, Decision,
                      MethodContext, branch_settings, build_method,
                      drop_method_imports, known_methods, method_label,
                      settings_keys)
from .stages import StageBook, fingerprint


class Comparison:
    """Runs every method on one config over seeds and writes the table.

    Args:
        config: The multi-task config (a ``BranchedMultiTaskModel`` with a
            ``BranchedEncoder``); a method's own search settings sit under
            its ``settings_key``.
        work_dir: Where everything is written.
        seeds: The seeds, e.g. ``[0, 1, 2]``.
        budget: Size of the trees: parameters (``25M``, ``60%`` of the
            single-task models together) or FLOPs per image
            (``3.5GFLOPs``); a method that searches with a size target of
            its own gets it as that target.
        alpha: Complexity weight of the affinity trees instead of a budget.
        budgets: Several sizes (a budget sweep): every method runs at every
            budget; the single-task and all-shared models, and each
            affinity, are trained or measured once per seed for all of
            them. Method folders go to ``seed_<s>/budget_<b>/``.
        methods: References (``single_task``, ``all_shared``) and names
            registered in :data:`branched_mtl.registry.METHODS` (the
            config's ``custom_imports`` register the projects'); the
            single-task models always train: they are every Δm's
            reference.
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
        # the config's custom_imports (with --cfg-options) register methods
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
            if cfg.get('custom_imports'):
                from mmengine.utils import import_modules_from_strings
                import_modules_from_strings(**cfg.custom_imports)
        known = known_methods()
        methods = list(methods or known)
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise UserError(f'--methods: unknown method(s) {unknown}; known: '
                            f'{", ".join(known)} (a project\'s method is '
                            'registered by the config\'s custom_imports)')
        # the reference of every Δm
        self.methods = [m for m in known
                        if m in methods or m == 'single_task']
        self.impls: Dict[str, BaseMethod] = {
            m: build_method(m) for m in self.methods if m not in REFERENCES}
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
        self.settings_keys = settings_keys()
        self.search_settings = {
            m: cfg.pop(key).to_dict() if hasattr(cfg.get(key), 'to_dict')
            else cfg.pop(key, None)
            for m, key in self.settings_keys.items()}
        drop_method_imports(cfg)
        self.cfg = cfg
        # every record key holds it; rendered once (the config is not
        # changed after this)
        self.cfg_text = config_text(cfg)
        self.source = osp.abspath(config)
        self.config = osp.join(self.work_dir, 'config.py')

    # ------------------------------------------------------------ setup
    def _write_configs(self) -> None:
        """``config.py``: the config every model trains with (the given
        one with --cfg-options, without the projects' search settings);
        ``<method>_config.py``: it plus that method's search settings."""
        write_configs(self.cfg, self.config, self.work_dir, {
            m: (key, self.search_settings[m])
            for m, key in self.settings_keys.items()})

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

    def _separation(self) -> Dict[str, Any]:
        """Each affinity method's separation of the task pairs over the
        seeds (one affinity per seed, whatever the budgets)."""
        return separation_scores(
            [m for m in self.methods
             if isinstance(self.impls.get(m), AffinityMethod)], self.seeds,
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
                summary['separation'] = self._separation()
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
                               by_budget=by_budget,
                               separation=self._separation())
                result = dict(summary, per_seed=per_seed)
            text = write_outputs(result, self.work_dir, self._labels())
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
        share_single_task(list(jobs.values()), costs)
        out['single_task'] = self._method(
            book, 'single_task', seed, lambda: dict(models={
                f'single_task/{t}': measure_result(
                    shared.results[f'single_task/{t}'], shape)
                for t in shared.tasks}, cost=None))
        if 'all_shared' in self.methods:
            out['all_shared'] = self._method(
                book, 'all_shared', seed,
                lambda: train_all_shared(shared, shape))
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

    def _labels(self) -> Dict[str, str]:
        return {m: method_label(m) for m in self.methods}

    def _run_methods(self, shared: BranchJob, book: StageBook,
                     costs: CostBook, shape: tuple) -> Dict[str, Any]:
        """Every method but the references, at the budget being run."""
        seed = shared.seed
        out: Dict[str, Any] = {}
        for method in self.methods:
            if method in SHARED_STAGES:
                continue
            impl = self.impls[method]
            if isinstance(impl, AffinityMethod):
                run = (lambda m=method: self._affinity_method(
                    shared, m, costs, shape))
            else:
                run = (lambda m=method, i=impl: self._decided(
                    shared, m, i, costs, shape))
            out[method] = self._method(book, method, seed, run)
        return out

    def _inputs(self, method: str, seed: int,
                whole_branch: bool = False) -> str:
        """What a method's result depends on: a changed input reruns it
        (``whole_branch``: the key of records written before it held only
        the ``branch`` settings the method reads)."""
        settings: List[Any] = []
        if method in self.settings_keys:
            settings = [self.search_settings[method], self.budget_text,
                        self.random_trees]
        elif method not in SHARED_STAGES:
            # the branch settings it reads: a tournament's sweep does not
            # rerun the RSA tree
            branch = self.cfg.get('branch') if whole_branch else (
                branch_settings(self.cfg.get('branch'), method))
            settings = [result_settings(branch), self.alpha,
                        self.budget_text, self.random_trees]
        return fingerprint('compare', method, seed, self.cfg_text,
                           *settings)

    def _method(self, book: StageBook, method: str, seed: int,
                run: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """One method of one seed: its record if it finished with these
        inputs, else run it; a failure is recorded, not raised."""
        fp = self._inputs(method, seed)
        key = method if method in SHARED_STAGES else self._key(method)
        done = book.done(key, fp, self._inputs(method, seed,
                                               whole_branch=True))
        if done is not None:
            self.log(f'[compare] {method_label(method)}: done earlier, '
                     'skipped')
            return done
        self.log(f'[compare] {method_label(method)}')
        failed_path = osp.join(self._seed_dir(seed, 'compare'),
                               'failed', key.replace('/', '__') + '.json')
        try:
            result = dict(status='done', **run())
        except Exception as e:  # noqa: B902  (recorded, the rest go on)
            if method == 'single_task':
                raise
            reason = f'{type(e).__name__}: {e}'
            self.log(f'[compare] {method_label(method)} FAILED: {reason}')
            failed = dict(status='failed', reason=reason)
            dump_json_atomic(failed, failed_path)
            return failed
        if osp.isfile(failed_path):
            os.remove(failed_path)
        book.finish(key, fp, result)
        return result

    # ------------------------------------------------------------ methods
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
                        affinity_budgets=self.budgets if self.tag else None,
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

    def _context(self, shared: BranchJob, method: str,
                 costs: CostBook) -> MethodContext:
        return MethodContext(
            job=shared, name=method, work_dir=self._mdir(shared.seed, method),
            settings=self.search_settings.get(method),
            settings_config=osp.join(self.work_dir, f'{method}_config.py')
            if method in self.settings_keys else self.config,
            budget_text=self.budget_text, alpha=self.alpha, costs=costs,
            key=self._key,
            seed_dir=lambda *parts: self._seed_dir(shared.seed, *parts),
            methods=self.methods, inputs=self._inputs(method, shared.seed),
            log=self.log,
            seed_inputs=(fingerprint('compare', method, shared.seed,
                                     self.cfg_text,
                                     self.search_settings[method])
                         if method in self.settings_keys else None))

    def _decided(self, shared: BranchJob, method: str, impl: BaseMethod,
                 costs: CostBook, shape: tuple) -> Dict:
        """A method that decides by itself: its tree and the tree's random
        relabellings, or the network it derived, trained and tested."""
        decision: Decision = impl.decide(self._context(shared, method,
                                                       costs))
        seed = shared.seed
        if decision.branches is not None:
            branches = validate_branches(
                decision.branches, shared.tasks,
                len(shared.info['block_names']))
            models = self._train_tree(
                shared, method, branches, shape,
                lambda cfg: fingerprint(method, decision.fingerprint, seed,
                                        config_text(cfg)),
                lambda k, cfg: fingerprint(f'{method}_random',
                                           decision.fingerprint, k, seed,
                                           config_text(cfg)))
        elif decision.encoder is not None:
            models = dict(model=self._train_derived(shared, method,
                                                    decision, shape))
        else:
            raise UserError(f'method {method!r} decided neither a tree nor '
                            'an encoder')
        return dict(models=models, cost=costs.total(decision.cost_keys),
                    search=decision.search)

    def _train_derived(self, shared: BranchJob, method: str,
                       decision: Decision, shape: tuple) -> Dict:
        """A derived encoder in the config every model trains with (its
        schedule, data and selection rule), trained and tested once."""
        cfg = copy.deepcopy(shared.cfg)
        cfg.model.encoder = dict(decision.encoder)
        imports = list((cfg.get('custom_imports') or {}).get('imports', []))
        imports += [m for m in decision.imports if m not in imports]
        cfg.custom_imports = dict(imports=imports,
                                  allow_failed_imports=False)
        cfg = shared.select_multi_task(cfg)
        result = shared.train_and_test(
            self._key(f'{method}/model'), cfg,
            self._mdir(shared.seed, method, 'model'),
            fingerprint(method, decision.fingerprint, shared.seed,
                        config_text(cfg)), decision.extra)
        return measure_result(result, shape)

    def _train_tree(self, shared: BranchJob, method: str, branches: list,
                    shape: tuple, tree_fp: Callable[[Config], str],
                    random_fp: Callable[[int, Config], str]
                    ) -> Dict[str, Any]:
        """A searched tree and its random relabellings (drawn from the seed
        and the tree's shape, like every method's), each trained, tested
        once and measured under ``<method>/`` at the budget being run.

        Args:
            tree_fp: The tree's stage fingerprint from its config.
            random_fp: Random tree k's fingerprint from k and its config.

        Returns:
            ``{'tree': ..., 'random/<k>': ...}``.
        """
        def stage(name: str, tree: list, fp: Callable[[Config], str]):
            # (model, record name, config, folder, fingerprint, extra)
            cfg = shared.with_tree(tree)
            return (name, self._key(f'{method}/{name}'), cfg,
                    self._mdir(shared.seed, method, *name.split('/')),
                    fp(cfg), dict(branches=tree))

        randoms = random_trees_like(
            branches, shared.tasks, self.random_trees,
            tree_rng(shared.seed, branches, shared.tasks))
        stages = [stage('tree', branches, tree_fp)] + [
            stage(f'random/{k}', rand, lambda cfg, k=k: random_fp(k, cfg))
            for k, rand in enumerate(randoms)]
        # side by side with branch.max_parallel > 1 (independent models)
        shared.train_ahead([s[1:5] for s in stages])
        try:
            return {s[0]: measure_result(shared.train_and_test(*s[1:]), shape)
                    for s in stages}
        finally:
            # a failed model fails the method (recorded, the comparison
            # goes on): its other models stop training with it
            shared.stop_ahead()
