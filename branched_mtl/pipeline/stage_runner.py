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
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from mmengine.config import Config

from branched_mtl.apis import config_tasks
from branched_mtl.apis.runner import evaluate, load_config, train
from branched_mtl.utils.checkpoints import resume_candidates
from branched_mtl.utils.errors import UserError
from .selection import (best_checkpoint, read_probe_curve, set_selection,
                        still_improving)
from .stages import (Progress, StageBook, find_model, fingerprint,
                     start_training)
from .steps import TOOLS, LogFileOnly, check_step, run_step, start_step


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
        max_parallel: With ``launcher='none'``, how many models of a batch
            of independent stages (:meth:`train_ahead`) train at once, each
            in its own process with its share of the cores (default: the
            config's ``branch.max_parallel``, else 1).

    ``branch.precollate=True`` in the config serves every model's training
    set pre-collated (:class:`~branched_mtl.datasets.PrecollatedDataset`:
    the same batches, without per-sample Python; for in-memory data sets
    whose pipeline draws nothing at random).
    """

    def __init__(self, config: str, work_dir: str, launcher: str = 'none',
                 gpus: int = 1, partition: Optional[str] = None,
                 seed: int = 0, log: Callable[[str], None] = print,
                 max_parallel: Optional[int] = None) -> None:
        self.config = osp.abspath(config)
        self.work_dir = osp.abspath(work_dir)
        self.launcher = launcher
        self.gpus = gpus
        self.partition = partition
        self.seed = seed
        self.log = log
        self.book = StageBook(self.work_dir)
        # where a model trained under another stage name is found (a
        # comparison's method jobs search their whole seed folder)
        self.twin_root = self.work_dir
        self.cfg = Config.fromfile(self.config)
        self.settings = dict(self.cfg.get('branch', {}))
        if max_parallel is None:
            max_parallel = self.settings.get('max_parallel', 1)
        if isinstance(max_parallel, bool) or not isinstance(
                max_parallel, int) or max_parallel < 1:
            raise ValueError('max_parallel (--max-parallel or '
                             'branch.max_parallel) must be an int >= 1, '
                             f'got {max_parallel!r}')
        self.max_parallel = max_parallel
        # stages training in subprocesses (train_ahead): name -> process,
        # and those waiting for a free slot
        self._ahead: Dict[str, Tuple[subprocess.Popen, List[str], str]] = {}
        self._queue: List[Tuple[str, Config, str, str]] = []
        self.tasks = config_tasks(self.cfg)
        self.results: Dict[str, Dict[str, Any]] = {}
        # each model's config by stage name: the report measures sizes and
        # speed from these, not from a record's files (which may be gone)
        self.configs: Dict[str, Config] = {}
        # a job's run() gives it the stages; empty, a stage run on its own
        # (train_and_test from another tool) reports to nothing
        self._progress = Progress([], log)

    def folder(self, *parts: str) -> str:
        return osp.join(self.work_dir, *parts)

    def config_text(self) -> str:
        """The job's config as fingerprint text (see :func:`config_text`)."""
        return config_text(self.cfg)

    def model_key(self, cfg: Config) -> str:
        """What makes a model: its config (without the tool settings) and the
        seed. Two stages with one key train the same model, bit for bit on
        one machine, so the second takes the first's result."""
        cfg = copy.deepcopy(cfg)
        # as training runs it (_prepare), whether or not the seed is set
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=self.seed)
        return fingerprint('model', config_text(cfg))

    def _twin(self, fp: str, model: str
              ) -> Optional[Tuple[str, Dict[str, Any]]]:
        """A finished stage of the same model: this book's record of ``fp``
        under any name, else a record of model key ``model`` anywhere under
        :attr:`twin_root`."""
        return self.book.twin(fp) or find_model(self.twin_root, model)

    def _prepare(self, name: str, cfg: Config, folder: str
                 ) -> Tuple[str, bool]:
        """Write ``cfg`` (with the seed) to ``folder`` for training; return
        its path and whether a killed run of it is resumed."""
        os.makedirs(folder, exist_ok=True)
        cfg = copy.deepcopy(cfg)  # the caller's stays as given (model_key)
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=self.seed)
        if self.settings.get('precollate'):
            # the same batches bit for bit, without per-sample Python
            # (PrecollatedDataset; a random pipeline is refused there)
            from branched_mtl.datasets import precollate_loader
            precollate_loader(cfg.train_dataloader)
        # a killed run of other inputs (seed, config, processes) is
        # cleared, never resumed
        start_training(name, folder, config_text(cfg),
                       dict(seed=self.seed, gpus=self.gpus), self.log)
        cfg_path = osp.join(folder, 'config.py')
        cfg.dump(cfg_path)
        # any checkpoint there is this stage's (a changed stage's folder is
        # cleared): resume from the newest one that loads, whatever
        # last_checkpoint says
        return cfg_path, bool(resume_candidates(folder))

    def train_ahead(self, stages: List[Tuple[str, Config, str, str]]
                    ) -> None:
        """Train a batch of independent stages side by side.

        With ``max_parallel`` > 1 and ``launcher='none'``, each stage of
        ``stages`` that is not done trains in a subprocess
        (``tools/train.py``, killed with this process), ``max_parallel`` at
        a time, while the job goes on; the stage's own
        :meth:`train_and_test` then waits for its run, chooses the
        checkpoint and reads the test split in this process, in the job's
        order. Otherwise nothing happens (each stage trains when its turn
        comes).

        Args:
            stages: ``(name, config, folder, fingerprint)`` as given to
                :meth:`train_and_test`.
        """
        if self.max_parallel <= 1 or self.launcher != 'none':
            return
        self._queue += [s for s in stages
                        if s[0] not in self._ahead and self.owns(s[0])]
        self._fill()

    def owns(self, name: str) -> bool:
        """Whether this runner's own book records stage ``name`` (a job
        that hands some stages to another runner says no for those: they
        are never trained ahead here)."""
        return True

    def _fill(self) -> None:
        """Start queued stages while a slot is free."""
        from branched_mtl.apis.sweep import job_env
        running = sum(p.poll() is None for p, _, _ in self._ahead.values())
        while self._queue and running < self.max_parallel:
            name, cfg, folder, fp = self._queue.pop(0)
            # done under this name or another (the same model)
            if name in self._ahead or self._twin(
                    fp, self.model_key(cfg)) is not None:
                continue
            self._clear_if_stale(name, fp, folder)
            cfg_path, resume = self._prepare(name, cfg, folder)
            cmd = [sys.executable, osp.join(TOOLS, 'train.py'), cfg_path,
                   '--work-dir', folder] + (['--resume'] if resume else [])
            self._ahead[name] = (start_step(
                cmd, folder, job_env(self.max_parallel)), cmd, folder)
            running += 1

    def _clear_if_stale(self, name: str, fp: str, folder: str) -> None:
        """A stage recorded with other inputs is cleared to run again."""
        if self.book.stale(name, fp):
            self.log(f'  {name}: inputs changed, running again')
            self.book.reset(name, folder)

    def _wait_ahead(self, name: str) -> None:
        """Wait for ``name``'s subprocess, starting queued stages as slots
        free up; a failed run stops the job."""
        proc, cmd, folder = self._ahead[name]
        while proc.poll() is None:
            self._fill()
            time.sleep(0.2)
        del self._ahead[name]
        check_step(name, cmd, folder, proc.returncode)
        self._fill()

    def stop_ahead(self) -> None:
        """Kill the stages still training in subprocesses (a job that
        stops early); a rerun resumes them from their checkpoints."""
        self._queue = []
        for proc, _, _ in self._ahead.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._ahead = {}

    def train(self, name: str, cfg: Config, folder: str) -> str:
        """Train ``cfg`` in ``folder`` (resuming a killed run), or wait for
        its run started by :meth:`train_ahead`; return the checkpoint the
        probe score chose."""
        if name in self._ahead:
            self._wait_ahead(name)
            return self._finished(name, folder)
        cfg_path, resume = self._prepare(name, cfg, folder)
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
        return self._finished(name, folder)

    @staticmethod
    def _finished(name: str, folder: str) -> str:
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
        if name not in self._ahead:  # else cleared before it started
            self._clear_if_stale(name, fp, folder)
        model = self.model_key(cfg)
        twin = self._twin(fp, model)
        if twin is not None and name not in self._ahead:
            # the same config and seed trained under another name: the
            # same model, not trained (or tested) twice
            self.log(f'  {name}: the same model as {twin[0]}, its result')
            self._progress.skipped()
            self.book.finish(name, fp, twin[1])
            return twin[1]
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
                             for r in curve], model=model,
                      **(extra or {}))
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
