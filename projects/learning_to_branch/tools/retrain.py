"""Retrain a searched tree from scratch, as the main job trains its trees.

    python projects/learning_to_branch/tools/retrain.py SEARCH_DIR \
        --work-dir DIR [--seed S] [--all-shared]

SEARCH_DIR is a work dir of tools/search.py (its ``search.json`` and
``branched.py``). With branched_mtl's own job (``BranchJob`` of
tools/branch.py) and the searched config's schedule, in DIR:

1. ``single_task/<task>/``: the single-task models (the main job's stage 1,
   same configs, so the same seed trains the same models);
2. ``ltb/``: the searched tree, trained from scratch with the same schedule,
   its best checkpoint chosen on the probe split by Δm against the
   single-task models' best probe values (the main job's rule), then tested
   once;
3. ``all_shared/`` (``--all-shared``): the all-shared network, for a check
   against the main job's numbers of the same seed.

``DIR/result.json`` and ``DIR/result.md``: test metrics, Δm against the
single-task models' test metrics (as the main job's report computes it),
parameters and FLOPs (mmengine's analysis), and the search cost.
"""
import argparse
import copy
import json
import os.path as osp
import sys
import warnings
from typing import Any, Dict, List, Optional

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import branched_mtl  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402

from branched_mtl.evaluation import delta_m  # noqa: E402
from branched_mtl.pipeline.branch import BranchJob, config_text  # noqa: E402
from branched_mtl.pipeline.compare_jobs import (  # noqa: E402
    NoProgress,
    measure_result, train_single_task)
from branched_mtl.pipeline.compare_report import (  # noqa: E402
    lower_keys, primary_reference)
from branched_mtl.pipeline.measure import input_shape  # noqa: E402
from branched_mtl.pipeline.report import primary_keys  # noqa: E402
from branched_mtl.apis.runner import evaluate, load_config  # noqa: E402
from branched_mtl.pipeline.selection import (read_probe_curve,  # noqa: E402
                                             set_selection)
from branched_mtl.pipeline.stages import fingerprint  # noqa: E402
from branched_mtl.tree import all_shared, validate_branches  # noqa: E402
from branched_mtl.utils import (UserError, WorkDirLock,  # noqa: E402
                                dump_json_atomic, write_text_atomic)
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402


class RetrainJob(BranchJob):
    """The main job's single-task stage and training rule for a given tree.

    Args:
        search_dir: A work dir of tools/search.py.
        work_dir: Where the models are trained.
        seed: Seed of every training run.
        with_all_shared: Also train the all-shared network.
    """

    def __init__(self, search_dir: Optional[str], work_dir: str,
                 seed: int = 0, with_all_shared: bool = False,
                 config: Optional[str] = None,
                 only_tasks: Optional[List[str]] = None) -> None:
        self.search, self.tree_config = None, None
        self.only_tasks = only_tasks
        # {model: folder of a --deferred-train run}
        self.deferred: Dict[str, str] = {}
        if search_dir is not None:
            path = osp.join(search_dir, 'search.json')
            if not osp.isfile(path):
                raise UserError(f'{search_dir} holds no search.json: run '
                                'projects/learning_to_branch/tools/'
                                'search.py with --work-dir there first')
            with open(path) as f:
                self.search = json.load(f)
            self.tree_config = osp.join(search_dir, 'branched.py')
            if not osp.isfile(self.tree_config):
                raise UserError(f'{self.tree_config} is missing')
            config = config or self.search['config']
        if config is None:
            raise UserError('give SEARCH_DIR, or --config for the '
                            'single-task models alone')
        self.with_all_shared = with_all_shared
        super().__init__(config, work_dir, alpha=0.0, random_trees=0,
                         seed=seed)
        # the search settings change no model: the single-task and
        # all-shared models are those of the config the project's inherits
        self.cfg.pop('ltb', None)

    def stages(self) -> List[str]:
        names = [f'single_task/{t}' for t in self.tasks]
        names += ['ltb'] if self.tree_config else []
        return names + (['all_shared'] if self.with_all_shared else [])

    def _run(self) -> Dict[str, Dict[str, Any]]:
        # the main job's stage weights do not fit this job's stages
        self._progress = NoProgress()
        for task in self.tasks:
            if self.only_tasks and task not in self.only_tasks:
                continue
            # exactly the main job's single-task models
            train_single_task(self, task, 'retrain')
        if self.only_tasks:
            return self.results
        nb = len(self.info['block_names'])
        models = []
        if self.tree_config is not None:
            tree_cfg = Config.fromfile(self.tree_config)
            branches = validate_branches(tree_cfg.model.encoder.branches,
                                         self.tasks, nb)
            models.append(('ltb', tree_cfg, branches))
        if self.with_all_shared:
            models.append(('all_shared', copy.deepcopy(self.cfg),
                           all_shared(self.tasks, nb)))
        for name, cfg, branches in models:
            self.log(f'[retrain] {name}')
            if name in self.deferred:
                self.results[name] = self.select_deferred(
                    name, self.deferred[name], dict(branches=branches))
                continue
            if name == 'all_shared':
                cfg.model.encoder.branches = None
            cfg = self.select_multi_task(cfg)
            self.results[name] = self.train_and_test(
                name, cfg, self.folder(name),
                fingerprint(name, self.seed, config_text(cfg)),
                dict(branches=branches))
        return self.results

    # ------------------------------------------------ deferred selection
    def deferred_config(self, name: str) -> Config:
        """``ltb`` or ``all_shared``, trained before the single-task
        references exist: a checkpoint at every probe evaluation, so that
        the main job's rule (best probe Δm against the single-task models'
        best probe values) can be applied once they do. The training itself
        is the same: only the score reported and the checkpoints kept
        differ."""
        if name == 'ltb':
            cfg = Config.fromfile(self.tree_config)
        elif name == 'all_shared':
            cfg = copy.deepcopy(self.cfg)
            cfg.model.encoder.branches = None
        else:
            raise UserError(f'--deferred-train: ltb or all_shared, got '
                            f'{name!r}')
        cfg = set_selection(cfg)
        cfg.default_hooks.checkpoint.update(
            interval=cfg.train_cfg.val_interval, max_keep_ckpts=-1)
        return cfg

    def train_deferred(self, name: str) -> str:
        """Train ``name`` in ``work_dir/name`` (no test yet)."""
        folder = self.folder(name)
        self.train(name, self.deferred_config(name), folder)
        return folder

    def select_deferred(self, name: str, folder: str, extra: dict) -> dict:
        """The main job's rule applied afterwards: the probe evaluation
        with the best Δm against the single-task models' best probe
        values; its checkpoint is tested once."""
        primary_cfg = dict(self.cfg.get('val_evaluator', {}).get('primary')
                           or {})
        lower_tasks = list(self.cfg.get('val_evaluator', {}).get(
            'lower_is_better', []) or [])
        reference, lower = {}, []
        for task in self.tasks:
            probe = self.results[f'single_task/{task}'].get('probe') or {}
            key = primary_keys(probe, [task], primary_cfg)[task]
            reference[key] = probe[key]
            if task in lower_tasks or key in lower_tasks:
                lower.append(key)
        curve = read_probe_curve(folder)
        if not curve:
            raise UserError(f'{folder}: no probe evaluations to select from')
        scored = [(delta_m({k: r[k] for k in reference}, reference, lower),
                   int(r['step'])) for r in curve]
        # the first best, as mmengine's save_best keeps it
        best, step = max(scored, key=lambda x: (x[0], -x[1]))
        ckpt = osp.join(folder, f'iter_{step}.pth')
        test_cfg = load_config(osp.join(folder, 'config.py'),
                               osp.join(folder, 'test'))
        metrics = evaluate(test_cfg, ckpt)
        return dict(checkpoint=ckpt, config=osp.join(folder, 'config.py'),
                    metrics=metrics,
                    probe=dict(step=step, delta_m=best),
                    curve=[[s_, d] for d, s_ in scored], **extra)

    def summary(self) -> Dict[str, Any]:
        """Test metrics, Δm, parameters and FLOPs of every model."""
        primary = dict(self.cfg.get('test_evaluator', {}).get('primary')
                       or {})
        single = {t: self.results[f'single_task/{t}'] for t in self.tasks}
        keys, reference = primary_reference(
            {t: single[t]['metrics'] for t in self.tasks}, self.tasks,
            primary)
        lower = lower_keys(self.cfg, keys)
        shape = input_shape(self.cfg)
        sizes = [measure_result(single[t], shape) for t in self.tasks]
        rows = [dict(model='single-task (all)', metrics=reference,
                     delta_m=0.0, params=sum(s['params'] for s in sizes),
                     flops=sum(s['flops'] for s in sizes))]
        for name in [n for n in ('ltb', 'all_shared') if n in self.results]:
            result = self.results[name]
            metrics = {keys[t]: result['metrics'][keys[t]]
                       for t in self.tasks}
            m = measure_result(result, shape)
            rows.append(dict(model=name, metrics=metrics,
                             delta_m=delta_m(metrics, reference, lower),
                             params=m['params'], flops=m['flops'],
                             branches=result.get('branches')))
        search = None if self.search is None else dict(
            seconds=self.search['search_seconds'],
            budget=self.search['budget'],
            budget_unit=self.search['budget_unit'],
            branches=self.search['branches'])
        return dict(seed=self.seed, keys=keys, rows=rows, search=search)


def _markdown(summary: Dict[str, Any], tasks: List[str]) -> str:
    keys = summary['keys']
    lines = [f'seed {summary["seed"]}; test split, best probe checkpoint',
             '', '| model | ' + ' | '.join(tasks)
             + ' | Δm (%) | params (M) | FLOPs (M) |',
             '| --- ' * (len(tasks) + 4) + '|']
    for r in summary['rows']:
        cells = [f'{r["metrics"][keys[t]]:.2f}' for t in tasks]
        lines.append(f'| {r["model"]} | ' + ' | '.join(cells)
                     + f' | {r["delta_m"]:+.2f} | {r["params"] / 1e6:.3f} | '
                     f'{r["flops"] / 1e6:.3f} |')
    if summary['search'] is not None:
        s = summary['search']['seconds']
        lines += ['', f'search: {s["wall"]:.0f} s wall, {s["cpu"]:.0f} s '
                  f'CPU time on {s["device"]}']
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Retrain a Learning-to-Branch tree as the main job '
        'trains its trees, and compute its Δm')
    parser.add_argument('search_dir', nargs='?',
                        help='work dir of tools/search.py (without it: the '
                        'single-task models of --config alone)')
    parser.add_argument('--config', help='the multi-task config (default: '
                        'the one the search read)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--all-shared', action='store_true',
                        help='also train the all-shared network')
    parser.add_argument('--tasks', nargs='+',
                        help='train only these single-task models (e.g. in '
                        'parallel processes; copy their folders and stage '
                        'records into one work dir afterwards)')
    parser.add_argument('--deferred-train', choices=['ltb', 'all_shared'],
                        help='train this model now, before the single-task '
                        'references exist (a checkpoint at every probe '
                        'evaluation); no test')
    parser.add_argument('--deferred', nargs='+', metavar='MODEL=FOLDER',
                        help='apply the selection rule to these '
                        '--deferred-train runs instead of training again')
    args = parser.parse_args(argv)
    try:
        job = RetrainJob(args.search_dir, args.work_dir, args.seed,
                         args.all_shared, args.config, args.tasks)
        unknown = [t for t in args.tasks or [] if t not in job.tasks]
        if unknown:
            raise UserError(f'--tasks: unknown task(s) {unknown}; the '
                            f'config has {job.tasks}')
        for item in args.deferred or []:
            name, _, folder = item.partition('=')
            if name not in ('ltb', 'all_shared') or not osp.isdir(folder):
                raise UserError(f'--deferred {item!r}: give ltb=FOLDER or '
                                'all_shared=FOLDER of a --deferred-train run')
            job.deferred[name] = folder
        with WorkDirLock(job.work_dir, option='--work-dir'):
            if args.deferred_train:
                folder = job.train_deferred(args.deferred_train)
                print(f'trained {args.deferred_train} in {folder}; select '
                      f'and test with --deferred '
                      f'{args.deferred_train}={folder}')
                return 0
            job._run()
        if args.tasks:
            return 0
        summary = job.summary()
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f'retrain: error: {e}', file=sys.stderr)
        return 2
    dump_json_atomic(summary, osp.join(args.work_dir, 'result.json'))
    text = _markdown(summary, job.tasks)
    write_text_atomic(text, osp.join(args.work_dir, 'result.md'))
    print(text)
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
