"""The per-model stage as a component: train one model with the config's
schedule and seed (resuming a killed run of the same inputs), keep its best
probe checkpoint, read the test split once, and record the result in the
stage book. The main job (:class:`~.branch.BranchJob`), the comparison and
the projects compose it."""
import contextlib
import copy
import gc
import os
import os.path as osp
import sys
import time
from typing import Any, Callable, Dict, Optional

from mmengine.config import Config

from branched_mtl.apis import config_tasks
from branched_mtl.apis.runner import evaluate, load_config, train
from branched_mtl.utils.checkpoints import resume_candidates
from branched_mtl.utils.errors import UserError
from .selection import (best_checkpoint, read_probe_curve, set_selection,
                        still_improving)
from .stages import Progress, StageBook, start_training
from .steps import TOOLS, LogFileOnly, run_step


def config_text(cfg: Config) -> str:
    """The config as text for fingerprints, without the tool settings in
    ``branch`` (they do not change how a model trains)."""
    cfg = copy.deepcopy(cfg)
    cfg.pop('branch', None)
    return cfg.pretty_text


class StageRunner:
    """Runs one model at a time on a multi-task config, each a recorded
    stage of ``<work_dir>/stages/``.

    Args:
        config: Path of the multi-task config (a ``BranchedMultiTaskModel``).
        work_dir: Where the stages write (``folder(...)``).
        launcher: ``none`` (in this process), ``pytorch``
            (``tools/dist_train.sh``) or ``slurm`` (``tools/slurm_train.sh``).
        gpus: Processes per training run with ``pytorch`` / ``slurm``.
        partition: Slurm partition.
        seed: Seed of every training run (``randomness.seed``).
        log: Where progress lines go.
    """

    def __init__(self, config: str, work_dir: str, launcher: str = 'none',
                 gpus: int = 1, partition: Optional[str] = None,
                 seed: int = 0, log: Callable[[str], None] = print) -> None:
        self.config = osp.abspath(config)
        self.work_dir = osp.abspath(work_dir)
        self.launcher = launcher
        self.gpus = gpus
        self.partition = partition
        self.seed = seed
        self.log = log
        self.book = StageBook(self.work_dir)
        self.cfg = Config.fromfile(self.config)
        self.settings = dict(self.cfg.get('branch', {}))
        self.tasks = config_tasks(self.cfg)
        self.results: Dict[str, Dict[str, Any]] = {}
        # a job's run() gives it the stages; empty, a stage run on its own
        # (train_and_test from another tool) reports to nothing
        self._progress = Progress([], log)

    def folder(self, *parts: str) -> str:
        return osp.join(self.work_dir, *parts)

    def config_text(self) -> str:
        """The job's config as fingerprint text (see :func:`config_text`)."""
        return config_text(self.cfg)

    def train(self, name: str, cfg: Config, folder: str) -> str:
        """Train ``cfg`` in ``folder`` (resuming a killed run); return the
        checkpoint the probe score chose."""
        os.makedirs(folder, exist_ok=True)
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=self.seed)
        # a killed run of other inputs (seed, config, processes) is
        # cleared, never resumed
        start_training(name, folder, config_text(cfg),
                       dict(seed=self.seed, gpus=self.gpus), self.log)
        cfg_path = osp.join(folder, 'config.py')
        cfg.dump(cfg_path)
        # any checkpoint there is this stage's (a changed stage's folder is
        # cleared): resume from the newest one that loads, whatever
        # last_checkpoint says
        resume = bool(resume_candidates(folder))
        if self.launcher == 'none':
            run_cfg = load_config(cfg_path, folder, resume=resume)
            # unique names keep in-process runs' message hubs apart
            run_cfg.experiment_name = f'{name}_{time.time_ns()}'
            with contextlib.redirect_stdout(LogFileOnly()):
                train(run_cfg)
            # the finished runner's loaders (persistent workers) are freed
            # here, not in a later run's forked worker, where their clean-up
            # fails with 'can only test a child process' on the console
            gc.collect()
        else:
            env = dict(os.environ, PYTHON=sys.executable)
            if self.launcher == 'pytorch':
                cmd = ['bash', osp.join(TOOLS, 'dist_train.sh'), cfg_path,
                       str(self.gpus)]
            else:
                env.update(GPUS=str(self.gpus),
                           GPUS_PER_NODE=str(min(self.gpus, 8)))
                cmd = ['bash', osp.join(TOOLS, 'slurm_train.sh'),
                       self.partition, f'branch_{name}', cfg_path]
            cmd += ['--work-dir', folder] + (['--resume'] if resume else [])
            run_step(name, cmd, folder, env)
        if not osp.isfile(osp.join(folder, 'last_checkpoint')):
            raise RuntimeError(f'{name}: training left no checkpoint in '
                               f'{folder}')
        return best_checkpoint(folder)

    def train_and_test(self, name: str, cfg: Config, folder: str,
                        fp: str, extra: Optional[dict] = None) -> dict:
        done = self.book.done(name, fp)
        if done is not None:
            self.log(f'  {name}: done earlier, skipped')
            self._progress.skipped()
            return done
        if self.book.stale(name, fp):
            self.log(f'  {name}: inputs changed, running again')
            self.book.reset(name, folder)
        ckpt = self.train(name, cfg, folder)
        # the test split, read once: the checkpoint the probe chose
        test_cfg = load_config(osp.join(folder, 'config.py'),
                               osp.join(folder, 'test'))
        test_cfg.experiment_name = f'{name}_test_{time.time_ns()}'
        with contextlib.redirect_stdout(LogFileOnly()):
            metrics = evaluate(test_cfg, ckpt)
        gc.collect()  # as after training
        curve = read_probe_curve(folder)
        best = max(curve, key=lambda r: r['score']) if curve else {}
        max_iters = cfg.train_cfg.max_iters
        # the report applies the same check to the stored curve
        if still_improving(curve, max_iters,
                           delta_m=not name.startswith('single')):
            self.log(f'  WARNING {name}: the probe score still improved over '
                     f'the last fifth of its {max_iters} iterations; the '
                     'schedule may be too short for it to converge')
        result = dict(checkpoint=ckpt, config=osp.join(folder, 'config.py'),
                      metrics=metrics, probe=best,
                      curve=[[int(r['step']), float(r['score'])]
                             for r in curve], **(extra or {}))
        self.book.finish(name, fp, result)
        return result

    def with_tree(self, branches: Optional[list]) -> Config:
        cfg = copy.deepcopy(self.cfg)
        cfg.model.encoder.branches = branches
        return self.select_multi_task(cfg)

    def select_multi_task(self, cfg: Config) -> Config:
        """Best checkpoint by Δm on the probe split against the single-task
        models' best probe values (the single-task models' own rule)."""
        from .report import primary_keys
        primary_cfg = dict(self.cfg.get('val_evaluator', {}).get('primary')
                           or {})
        reference, primary = {}, {}
        for task in self.tasks:
            probe = self.results[f'single_task/{task}'].get('probe') or {}
            key = primary_keys(probe, [task], primary_cfg)[task]
            reference[task] = probe[key]
            primary[task] = key[len(task) + 1:]
        zero = [t for t, v in reference.items() if v == 0]
        if zero:
            # Δm divides by these values: the multi-task models could not be
            # compared or selected (their validation would fail mid-run)
            raise UserError(
                'the single-task model(s) of ' + ', '.join(
                    f'{t!r} scored 0 on {primary[t]}' for t in zero) +
                ' on the probe split (best of '
                + ', '.join(self.folder('single_task', t) for t in zero) +
                '), and Δm, by which the multi-task models are compared and '
                'their checkpoints chosen, divides by that value. Train '
                'longer (train_cfg.max_iters) or check those tasks\' data; '
                'the finished stages are kept')
        return set_selection(cfg, reference, primary)

    def probe_settings(self) -> dict:
        """AffinityHook settings: the same K held-out samples in every run."""
        return dict(self.settings.get('probe', dict(dataset='val',
                                                    num_samples=64)))
