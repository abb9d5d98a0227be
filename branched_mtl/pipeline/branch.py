"""The main job: from a multi-task config to a trained branched network.

Stages (each recorded atomically in ``<work_dir>/stages/``, skipped on a
rerun when its inputs are unchanged):

1. one single-task model per task (with the AffinityHook probe),
2. the task affinity of the method (``--affinity``, a name registered in
   :data:`branched_mtl.registry.METHODS`): RSA of the single-task features,
   the tournament over a recombination sweep run by
   ``tools/sweep_recombination.py``, or TAG's lookahead,
3. the tree (the tree search of :mod:`branched_mtl.tree`) and its config;
   a method that is not an affinity decides the tree itself here
   (:meth:`BaseMethod.decide`, e.g. Learning to Branch's search),
4. the branched network, the all-shared network and R random trees of the
   same size, trained and tested,
5. the report (``report.md`` with tables and figures).
"""
import math
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

from mmengine.config import Config

from branched_mtl.apis import add_affinity_hook, single_task_config
from branched_mtl.apis.checks import check_multi_task_config
from branched_mtl.models import describe_model
from branched_mtl.models.describe import add_block_flops
from branched_mtl.tree import (all_shared, count_tree_params, fully_separate,
                               parse_budget, random_trees_like, tree_rng,
                               validate_branches)
from branched_mtl.tree.budget import Budget, is_flops_budget
from branched_mtl.tree.builder import build_tree, sweep_alpha
from branched_mtl.tree.problem import ModelBlocks
from branched_mtl.utils.errors import UserError, short_repr
from branched_mtl.utils.io import write_text_atomic
from branched_mtl.utils.lock import WorkDirLock
from branched_mtl.utils.paths import check_work_dir
from .selection import set_selection
from .costs import CostBook
from .methods import AffinityMethod, MethodContext, build_method
from .stage_runner import StageRunner, config_text
from .stages import Progress, StageBook, fingerprint, format_duration

LAUNCHERS = ('none', 'pytorch', 'slurm')
METHODS = ('auto', 'exact', 'beam')
MAX_SEED = 2**32 - 1  # numpy's seeds


class BranchJob(StageRunner):
    """Runs the whole method on a multi-task config.

    Args:
        config: Path of the multi-task config (a ``BranchedMultiTaskModel``).
        work_dir: Where every stage writes.
        affinity: The method (default ``'rsa'``): a name registered in
            :data:`branched_mtl.registry.METHODS` (``rsa``,
            ``tournament``, ``tag``, and the projects' methods that the
            config's ``custom_imports`` register).
        alpha: Complexity weight of the tree cost.
        budget: Parameter budget (``25M``, ``60%`` of the single-task models
            together ...); alpha then defaults to 0.
        method: Tree search, ``auto`` / ``exact`` / ``beam``.
        top_n: Beam width.
        launcher: ``none`` (in this process), ``pytorch``
            (``tools/dist_train.sh``) or ``slurm`` (``tools/slurm_train.sh``).
        gpus: Processes per training run with ``pytorch`` / ``slurm``.
        partition: Slurm partition.
        random_trees: R, random trees of the chosen size (default: the
            config's ``branch.random_trees``, else 3).
        seed: Seed of every training run (``randomness.seed``) and of the
            random trees.
        log: Where progress lines go.
        max_parallel: Models trained at once with ``launcher='none'``: the
            single-task models side by side, then the branched, all-shared
            and random ones, each in its own process with its share of the
            cores (default: the config's ``branch.max_parallel``, else 1:
            one after another in this process).
    """

    def __init__(self,
                 config: str,
                 work_dir: str,
                 affinity: str = 'rsa',
                 alpha: Optional[float] = None,
                 budget: Any = None,
                 method: str = 'auto',
                 top_n: int = 3,
                 launcher: str = 'none',
                 gpus: int = 1,
                 partition: Optional[str] = None,
                 random_trees: Optional[int] = None,
                 seed: int = 0,
                 log: Callable[[str], None] = print,
                 max_parallel: Optional[int] = None) -> None:
        # '' would become the current folder
        check_work_dir(work_dir, '--work-dir', create=False)
        super().__init__(config, work_dir, launcher=launcher, gpus=gpus,
                         partition=partition, seed=seed, log=log,
                         max_parallel=max_parallel)
        self.affinity_method = affinity
        self.alpha = alpha
        self.method = method
        self.top_n = top_n
        # checked in _check_options, never rounded (2.9 is not 2 trees)
        self._random_trees_option = ('--random-trees' if random_trees
                                     is not None else 'branch.random_trees')
        self.random_trees = (random_trees if random_trees is not None
                             else self.settings.get('random_trees', 3))
        self._budget_arg = budget
        self._check_inputs()

    # ------------------------------------------------------------ checks
    def _check_inputs(self) -> None:
        """Stop before any training on a config or option that cannot work.

        Nothing is created on disk before every check passed.
        """
        self._check_options()
        self.decider = build_method(self.affinity_method, '--affinity')
        if self.launcher not in LAUNCHERS:
            raise ValueError(f'--launcher must be one of {LAUNCHERS}, got '
                             f'{self.launcher!r}')
        if self.launcher == 'slurm' and not self.partition:
            raise ValueError('--launcher slurm needs --partition')
        if self.alpha is None and self._budget_arg is None:
            raise ValueError('give --alpha or --budget')
        if self.alpha is not None and self.alpha < 0:
            raise ValueError(f'alpha must be >= 0, got {self.alpha}')
        if self.random_trees < 0:
            raise ValueError(f'random_trees must be >= 0, got '
                             f'{self.random_trees}')
        self.tasks = check_multi_task_config(
            self.cfg, self.config, self.probe_settings().get('num_samples'))
        self.decider.check(self)
        self.info = describe_model(self.cfg.model.to_dict())
        nb = len(self.info['block_names'])
        bp, hp = self.info['block_params'], self.info['head_params']
        self.shared_params = count_tree_params(
            all_shared(self.tasks, nb), bp, hp)
        self.separate_params = count_tree_params(
            fully_separate(self.tasks, nb), bp, hp)
        # parsed once into a Budget that carries its unit (parameters, or
        # FLOPs per image); every later stage takes that object
        self.budget: Optional[Budget] = self.read_budget(self._budget_arg)
        if self.params_budget is not None and \
                self.params_budget < self.shared_params:
            raise ValueError(
                f'budget {self.budget:,} parameters is below the all-shared '
                f'network ({self.shared_params:,}), the smallest tree: no '
                'tree fits')
        # last, so a refused job leaves nothing behind; created by run()
        check_work_dir(self.work_dir, '--work-dir', create=False)

    def _check_options(self) -> None:
        """The numbers and choices of the command line."""
        alpha = self.alpha
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(
                alpha, (int, float)) or not math.isfinite(alpha)):
            raise UserError(f'--alpha must be a finite number >= 0, got '
                            f'{short_repr(alpha)}')
        if self.method not in METHODS:
            raise UserError(f'--method must be one of {METHODS}, got '
                            f'{short_repr(self.method)}')
        for name, value, low in (('--top-n', self.top_n, 1),
                                 ('--gpus', self.gpus, 1),
                                 (self._random_trees_option,
                                  self.random_trees, 0),
                                 ('--seed', self.seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < low:
                raise UserError(f'{name} must be a whole number >= {low}, '
                                f'got {short_repr(value)}')
        if self.seed > MAX_SEED:
            raise UserError(f'--seed must be a whole number <= {MAX_SEED} '
                            f'(numpy\'s seeds), got {self.seed}')

    def read_budget(self, text: Any) -> Optional[Budget]:
        """A size budget as the user wrote it, for this config.

        Args:
            text: Parameters (``25M``, ``60%`` of the single-task models
                together) or FLOPs per image (``3.5GFLOPs``), or None.

        Returns:
            The :class:`Budget` (its unit and value), or None.
        """
        if text is None:
            return None
        if is_flops_budget(text):
            from .measure import check_flops_budget
            return check_flops_budget(text, self.cfg)
        return Budget(self._parse_budget(text), 'params')

    def _parse_budget(self, text: Any) -> int:
        """The budget in parameters; a budget that rounds to nothing is
        refused instead of silently becoming 0."""
        from branched_mtl.tree.budget import check_nonzero_budget
        try:
            budget = parse_budget(text, self.separate_params)
        except OverflowError:
            raise UserError(f'--budget {short_repr(text)} is too large to be '
                            'a parameter count') from None
        except ValueError as e:
            raise UserError(f'--budget: {e}') from None
        return check_nonzero_budget(budget, text, '--budget')

    # ------------------------------------------------------------ helpers
    @property
    def params_budget(self) -> Optional[int]:
        """The budget in parameters; None without one or for FLOPs."""
        if self.budget is None or self.budget.unit != 'params':
            return None
        return int(self.budget)

    # ------------------------------------------------------------ stages
    def stages(self) -> List[str]:
        names = [f'single_task/{t}' for t in self.tasks]
        if isinstance(self.decider, AffinityMethod):
            names.append('affinity')
        names += ['tree', 'branched', 'all_shared']
        names += [f'random/{k}' for k in range(self.random_trees)]
        return names + ['report']

    def run(self) -> Dict[str, Dict[str, Any]]:
        """Run (or resume) every stage; return each model's results.

        The work dir is locked for the whole run: a second job on it stops
        at once and names this one.
        """
        with WorkDirLock(self.work_dir, option='--work-dir'):
            try:
                return self._run()
            finally:
                self.stop_ahead()

    def _stage_weights(self, tree: Optional[list] = None) -> List[tuple]:
        """``(name, kind, weight)`` of every stage for :class:`Progress`:
        its cost relative to one single-task model. A multi-task model
        weighs its parameters over a single-task model's (``tree``: the
        chosen tree once known; before, the budget or the middle of the
        range); the tournament sweep its recombined runs' iterations."""
        bp, hp = self.info['block_params'], self.info['head_params']
        num = len(self.tasks)
        single = self.separate_params / num
        if tree is not None:
            tree_params = count_tree_params(tree, bp, hp)
        elif self.params_budget is not None:
            tree_params = self.params_budget
        else:
            tree_params = (self.shared_params + self.separate_params) / 2
        affinity = (self.decider.weight(self)
                    if isinstance(self.decider, AffinityMethod) else 0.0)
        weights = []
        for name in self.stages():
            if name.startswith('single_task/'):
                weights.append((name, 'single', 1.0))
            elif name == 'all_shared':
                weights.append((name, 'multi', self.shared_params / single))
            elif name == 'branched' or name.startswith('random/'):
                weights.append((name, 'multi', tree_params / single))
            elif name == 'affinity':
                weights.append((name, 'other', affinity))
            elif name == 'tree' and not isinstance(self.decider,
                                                    AffinityMethod):
                # a method's own search: about one all-shared training run
                weights.append((name, 'other', self.shared_params / single))
            else:  # tree search; the report measures every model
                weights.append((name, 'other', 0.02 if name == 'tree' else
                                0.15 * (num + 2 + self.random_trees)))
        return weights

    def _run(self) -> Dict[str, Dict[str, Any]]:
        self._progress = Progress(self._stage_weights(), self.log,
                                  self.work_dir)
        progress = self._progress.start

        probe = self.probe_settings()
        singles = []
        for task in self.tasks:
            cfg = set_selection(add_affinity_hook(
                single_task_config(self.cfg, task), **probe))
            singles.append((f'single_task/{task}', cfg,
                            self.folder('single_task', task),
                            fingerprint('single_task', self.seed,
                                        config_text(cfg))))
        self.train_ahead(singles)
        single_fps = {}
        for task, stage in zip(self.tasks, singles):
            progress(stage[0])
            single_fps[task] = stage[3]
            self.results[stage[0]] = self.train_and_test(*stage)

        affinity_path = None
        if isinstance(self.decider, AffinityMethod):
            progress('affinity')
            aff_fp = fingerprint('affinity', self.affinity_method,
                                 single_fps, *self.decider.inputs(self))
            affinity_path = self._affinity(aff_fp)
            progress('tree')
            tree_fp = fingerprint('tree', aff_fp, self.alpha,
                                  str(self.budget),
                                  self.method, self.top_n,
                                  config_text(self.cfg))
            tree = self._tree(tree_fp, affinity_path)
        else:
            progress('tree')
            # the config text holds the method's own settings
            tree_fp = fingerprint('tree', self.affinity_method, single_fps,
                                  self.alpha, str(self.budget),
                                  config_text(self.cfg))
            tree = self._decide(tree_fp)
        branches = tree['branches']
        self._progress.set_weights(self._stage_weights(branches))

        branched_cfg = self.select_multi_task(
            Config.fromfile(tree['config']))
        shared_cfg = self.with_tree(None)
        # distinct relabellings of the tree (same shape and size), drawn
        # from the seed and the shape: every method of this seed whose tree
        # has this shape meets the same ones
        randoms = random_trees_like(branches, self.tasks, self.random_trees,
                                    tree_rng(self.seed, branches, self.tasks))
        multi = [('branched', branched_cfg, self.folder('branched'),
                  fingerprint('branched', tree_fp, self.seed,
                              config_text(branched_cfg)),
                  dict(branches=branches)),
                 ('all_shared', shared_cfg, self.folder('all_shared'),
                  fingerprint('all_shared', self.seed,
                              config_text(shared_cfg)),
                  dict(branches=all_shared(self.tasks, len(branches))))]
        for k, rand in enumerate(randoms):
            cfg = self.with_tree(rand)
            multi.append((f'random/{k}', cfg, self.folder('random', str(k)),
                          fingerprint('random', tree_fp, k, self.seed,
                                      config_text(cfg)),
                          dict(branches=rand)))
        self.configs.update({s[0]: s[1] for s in singles})
        self.configs.update({m[0]: m[1] for m in multi})
        self.train_ahead([m[:4] for m in multi])
        for name, cfg, folder, fp, extra in multi:
            progress(name)
            self.results[name] = self.train_and_test(name, cfg, folder, fp,
                                                     extra)

        for k in range(len(randoms), self.random_trees):
            progress(f'random/{k}')
            self._progress.skipped()
            self.log(f'[branch] random/{k}: the tree has only '
                     f'{len(randoms)} other relabellings')

        progress('report')
        from .report import write_report
        report = write_report(self, affinity_path, tree)
        elapsed = self._progress.finish()
        self.log(f'[branch] all {len(self.stages())} stages in '
                 f'{format_duration(elapsed)}; report: {report}')
        return self.results

    def _affinity_book(self) -> StageBook:
        """Where the affinity stage is recorded (the job's own book; a
        comparison's budget sweep shares one affinity per seed)."""
        return self.book

    def _affinity(self, fp: str) -> str:
        path = self.folder('affinity', 'affinity.json')
        book = self._affinity_book()
        done = book.done('affinity', fp)
        if done is not None and osp.isfile(path):
            self.log('  affinity: done earlier, skipped')
            self._progress.skipped()
            return path
        for line in self.decider.notes(self):
            self.log(f'  note: {line}')
        self.decider.measure(self, path, fp)
        book.finish('affinity', fp, dict(path=path))
        return path

    def _tree_done(self, fp: str) -> Tuple[str, Optional[dict]]:
        """The tree config's path, and the tree stage's record when it
        finished with these inputs (then logged as skipped)."""
        out = self.folder('tree', 'branched.py')
        done = self.book.done('tree', fp)
        if done is not None and osp.isfile(out):
            self.log('  tree: done earlier, skipped')
            self._progress.skipped()
            return out, done
        return out, None

    def _tree(self, fp: str, affinity_path: str) -> dict:
        out, done = self._tree_done(fp)
        if done is not None:
            return done
        os.makedirs(osp.dirname(out), exist_ok=True)
        blocks = ModelBlocks.from_mapping(self.info)
        if self.budget is not None and self.budget.unit == 'flops':
            # the config's first test image, as check_flops_budget
            blocks = add_block_flops(blocks, self.cfg)
        built = build_tree(affinity_path, blocks, self.config,
                           alpha=self.alpha, budget=self.budget,
                           method=self.method, top_n=self.top_n, out=out)
        text = built.text
        sweep = None
        if self.budget is None:
            # with alpha alone the size is whatever alpha gives: the sizes
            # every alpha reaches go in the report beside the chosen one
            swept = sweep_alpha(affinity_path, blocks, self.config,
                                method=self.method, top_n=self.top_n)
            text += '\n\n' + swept.text
            sweep = [dict(alpha_min=r['alpha_min'], alpha_max=r['alpha_max'],
                          params=int(r['params']),
                          groups=[len(p) for p in r['branches']],
                          chosen=r['branches'] == built.branches)
                     for r in swept.rows]
        # its tables (tree, cost per block, sizes) go to a file beside the
        # config, not the console
        write_text_atomic(text + '\n',
                          osp.join(osp.dirname(out), 'build_tree.txt'))
        branches = validate_branches(built.branches, self.tasks,
                                     len(self.info['block_names']))
        result = dict(config=built.config, branches=branches, png=built.png,
                      params=int(built.params), alpha_sweep=sweep)
        self.book.finish('tree', fp, result)
        return result

    def _decide(self, fp: str) -> dict:
        """The tree of a method that decides by itself, written as a config
        (``tree/branched.py``, drawn beside it) like the searched trees."""
        from branched_mtl.tree import write_tree_config
        from branched_mtl.tree.draw import draw_tree
        out, done = self._tree_done(fp)
        if done is not None:
            return done
        name = self.affinity_method
        key = self.decider.settings_key
        settings = self.cfg.get(key) if key else None
        ctx = MethodContext(
            job=self, name=name, work_dir=self.folder('tree'),
            settings=settings.to_dict() if hasattr(settings, 'to_dict')
            else settings, settings_config=self.config,
            budget_text=(None if self._budget_arg is None
                         else str(self._budget_arg)),
            alpha=self.alpha, costs=CostBook(self.folder('tree')),
            key=lambda part: part, seed_dir=self.folder, methods=[name],
            inputs=fp, log=self.log)
        decision = self.decider.decide(ctx)
        if decision.branches is None:
            raise UserError(
                f'--affinity {name}: the method derives a network that is '
                'not a tree (no branches to train or relabel); compare it '
                'with tools/analysis/compare_methods.py --methods '
                f'{name}')
        names = list(self.info['block_names'])
        branches = validate_branches(decision.branches, self.tasks,
                                     len(names))
        params = count_tree_params(branches, self.info['block_params'],
                                   self.info['head_params'])
        header = [f'Generated by tools/branch.py: the tree of the method '
                  f'{name!r}.', f'method={name} params={params}']
        write_tree_config(out, self.config, branches, self.tasks, header,
                          names)
        png = osp.splitext(out)[0] + '.png'
        draw_tree(branches, png, self.tasks, names,
                  title=f'{name}, {params / 1e6:.3g}M params')
        result = dict(config=out, branches=branches, png=png,
                      search=decision.search)
        self.book.finish('tree', fp, result)
        return result
