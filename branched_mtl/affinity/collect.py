"""Collect per-run affinity probes into one affinity tensor (Step 3).

Every training run whose work dir contains an ``affinity_probe/`` folder
(written by ``AffinityHook``) can be used:

* ``meta.json``: ``{"tasks": [...], "blocks": [...], "sample_indices":
  [K ints], "recombination": null | {"target", "source", "split"}}``, where
  ``blocks`` are the model's block names and ``split`` = l is the number of
  frozen bottom blocks (1..L), i.e. the run measures the split after block
  ``blocks[l - 1]`` (files written before the key was named ``blocks``
  have ``splits``); ``target`` null means every
  task of the run is a target (all recombined networks of one (source,
  split) trained together on a shared frozen bottom);
* ``losses.npy``: (len(tasks), K) per-sample losses;
* ``features/<task>/<split>.npy``: (K, ...) features at each split.

:func:`collect_rsa` uses single-task runs (``recombination`` null) and their
features; :func:`collect_tournament` uses recombined runs and their losses.
Both return ``(tasks, layers, affinity, meta)`` with ``affinity`` of shape
(L, N, N), ready for :func:`branched_mtl.affinity.save_affinity`.

Task order: ``tasks`` fixes it when given (then every run must belong to one
of these tasks). Otherwise the runs are sorted by their directory path and
the tasks are taken in order of first appearance in their metas (the
``tasks`` list, then the recombination target and source), so the order does
not depend on the order in which run dirs were passed or globbed.
"""
import datetime
import glob
import json
import os
from dataclasses import dataclass
from typing import (Any, Dict, Iterable, List, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from .rsa import rsa_affinity
from .tournament import performance_matrix

__all__ = [
    'PROBE_DIRNAME', 'ProbeRun', 'read_probe', 'find_probe_runs',
    'collect_rsa', 'collect_tournament'
]

PROBE_DIRNAME = 'affinity_probe'

PathLike = Union[str, os.PathLike]
Collected = Tuple[List[str], List[str], np.ndarray, Dict[str, Any]]


@dataclass(frozen=True)
class ProbeRun:
    """One run's ``affinity_probe/meta.json``, validated.

    Attributes:
        run_dir: the training work dir (parent of ``affinity_probe/``).
        probe_dir: the ``affinity_probe`` folder.
        tasks: tasks the run trains (rows of ``losses.npy``).
        splits: split names, shallow to deep.
        sample_indices: the K held-out sample indices.
        recombination: ``None`` or ``(target, source, split)`` with split
            the number of frozen bottom blocks (1..L); ``target`` is None
            when every task of the run is a target.
    """
    run_dir: str
    probe_dir: str
    tasks: Tuple[str, ...]
    splits: Tuple[str, ...]
    sample_indices: Tuple[int, ...]
    recombination: Optional[Tuple[Optional[str], str, int]]

    @property
    def num_samples(self) -> int:
        return len(self.sample_indices)

    @property
    def recombined(self) -> List[Tuple[str, str, int]]:
        """The (target, source, split) combinations the run measures."""
        if self.recombination is None:
            return []
        target, source, split = self.recombination
        targets = list(self.tasks) if target is None else [target]
        return [(t, source, split) for t in targets]

    def losses(self) -> np.ndarray:
        """Load ``losses.npy``.

        Returns:
            np.ndarray: float64 (len(tasks), K), checked to be finite.
        """
        path = os.path.join(self.probe_dir, 'losses.npy')
        if not os.path.isfile(path):
            raise ValueError(f'{self.run_dir}: missing {path}')
        arr = np.asarray(np.load(path), dtype=np.float64)
        expected = (len(self.tasks), self.num_samples)
        if arr.shape != expected:
            raise ValueError(f'{path}: shape {arr.shape}, expected (tasks, '
                             f'K samples) = {expected} from meta.json')
        bad = ~np.isfinite(arr)
        if bad.any():
            row, sample = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f'{path}: non-finite loss {arr[row, sample]} '
                             f'for task {self.tasks[row]!r} at sample '
                             f'{sample}')
        return arr

    def features_path(self, task: str, split: str) -> str:
        """Path of the features of ``task`` at ``split``."""
        return os.path.join(self.probe_dir, 'features', task, f'{split}.npy')


def _names(value: Any, key: str, path: str) -> Tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise ValueError(f'{path}: {key!r} must be a non-empty list of '
                         f'non-empty strings, got {value!r}')
    if len(set(value)) != len(value):
        raise ValueError(f'{path}: {key!r} has duplicates: {value!r}')
    return tuple(value)


def read_probe(run_dir: PathLike) -> ProbeRun:
    """Read and validate the probe meta of one run.

    Args:
        run_dir: a training work dir containing ``affinity_probe/`` (the
            ``affinity_probe`` folder itself is accepted too).

    Returns:
        ProbeRun: the validated meta.
    """
    run_dir = os.path.normpath(os.fspath(run_dir))
    probe_dir = os.path.join(run_dir, PROBE_DIRNAME)
    if not os.path.isfile(os.path.join(probe_dir, 'meta.json')):
        if (os.path.basename(run_dir) == PROBE_DIRNAME
                and os.path.isfile(os.path.join(run_dir, 'meta.json'))):
            probe_dir, run_dir = run_dir, os.path.dirname(run_dir) or '.'
        else:
            raise ValueError(f'{run_dir}: no {PROBE_DIRNAME}/meta.json (not '
                             'a run dir with an affinity probe)')
    path = os.path.join(probe_dir, 'meta.json')
    with open(path, encoding='utf-8') as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from e
        except RecursionError:
            raise ValueError(f'{path}: nested too deep to be a probe '
                             'record; delete its run\'s done.json to run it '
                             'again') from None
    if not isinstance(meta, dict):
        raise ValueError(f'{path}: expected a JSON object')
    if 'blocks' not in meta and 'splits' in meta:
        meta['blocks'] = meta.pop('splits')  # written before the rename
    missing = [k for k in ('tasks', 'blocks', 'sample_indices',
                           'recombination') if k not in meta]
    if missing:
        raise ValueError(f'{path}: missing key(s) {missing}')
    tasks = _names(meta['tasks'], 'tasks', path)
    splits = _names(meta['blocks'], 'blocks', path)
    indices = meta['sample_indices']
    if (not isinstance(indices, list) or not indices or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indices)):
        raise ValueError(f'{path}: "sample_indices" must be a non-empty list '
                         'of ints')
    rec = meta['recombination']
    if rec is not None:
        if not isinstance(rec, dict) or any(k not in rec
                                            for k in ('target', 'source',
                                                      'split')):
            raise ValueError(f'{path}: "recombination" must be null or '
                             '{"target", "source", "split"}, got '
                             f'{rec!r}')
        target, source, split = rec['target'], rec['source'], rec['split']
        if not ((target is None or isinstance(target, str))
                and isinstance(source, str)):
            raise ValueError(f'{path}: recombination target/source must be '
                             f'task names, got {rec!r}')
        if (not isinstance(split, int) or isinstance(split, bool)
                or not 1 <= split <= len(splits)):
            raise ValueError(f'{path}: recombination split must be an int in '
                             f'1..{len(splits)} (number of frozen blocks), '
                             f'got {split!r}')
        if target is not None and target not in tasks:
            raise ValueError(f'{path}: recombination target {target!r} is '
                             f'not among the run\'s tasks {list(tasks)}')
        rec = (target, source, split)
    return ProbeRun(run_dir, probe_dir, tasks, splits, tuple(indices), rec)


def find_probe_runs(sweep_dir: PathLike) -> List[str]:
    """Find every run below ``sweep_dir`` that has an affinity probe.

    Args:
        sweep_dir: directory searched recursively for
            ``**/affinity_probe/meta.json``.

    Returns:
        list[str]: sorted run dirs (parents of ``affinity_probe``).
    """
    sweep_dir = os.fspath(sweep_dir)
    if not os.path.isdir(sweep_dir):
        raise ValueError(f'{sweep_dir}: not a directory')
    pattern = os.path.join(glob.escape(sweep_dir), '**', PROBE_DIRNAME,
                           'meta.json')
    metas = glob.glob(pattern, recursive=True)
    if not metas:
        raise ValueError(f'{sweep_dir}: no {PROBE_DIRNAME}/meta.json found '
                         'below it')
    return sorted(os.path.dirname(os.path.dirname(m)) for m in metas)


def _read_runs(run_dirs: Iterable[PathLike]) -> List[ProbeRun]:
    runs = [read_probe(d) for d in run_dirs]
    if not runs:
        raise ValueError('no run dirs given')
    seen: Dict[str, str] = {}
    for run in runs:
        key = os.path.realpath(run.probe_dir)
        if key in seen:
            raise ValueError(f'run {run.run_dir} given twice (also as '
                             f'{seen[key]})')
        seen[key] = run.run_dir
    ref = runs[0]
    for run in runs[1:]:
        if run.splits != ref.splits:
            raise ValueError(
                f'runs disagree on split names: {ref.run_dir} has '
                f'{list(ref.splits)}, {run.run_dir} has {list(run.splits)}')
        if run.sample_indices != ref.sample_indices:
            raise ValueError(
                f'runs disagree on sample_indices: {ref.run_dir} and '
                f'{run.run_dir} were probed on different samples (K='
                f'{ref.num_samples} vs K={run.num_samples})')
    return runs


def _task_order(runs: Sequence[ProbeRun],
                tasks: Optional[Sequence[str]]) -> List[str]:
    appearing: List[str] = []
    for run in sorted(runs, key=lambda r: r.run_dir):
        names = list(run.tasks)
        if run.recombination is not None:
            names += [n for n in run.recombination[:2] if n is not None]
        for name in names:
            if name not in appearing:
                appearing.append(name)
    if tasks is None:
        return appearing
    tasks = list(tasks)
    if not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f'tasks must be non-empty and unique, got {tasks}')
    extra = [t for t in appearing if t not in tasks]
    if extra:
        raise ValueError(f'runs involve task(s) {extra} that are not in the '
                         f'requested tasks {tasks}; pass only runs of these '
                         'tasks or add them')
    return tasks


def _provenance(method: str, ref: ProbeRun) -> Dict[str, Any]:
    return {
        'method': method,
        'num_samples': ref.num_samples,
        'sample_indices': list(ref.sample_indices),
        'blocks': list(ref.splits),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'),
        'created_by': 'branched_mtl.affinity.collect',
    }


def collect_rsa(run_dirs: Iterable[PathLike],
                tasks: Optional[Sequence[str]] = None) -> Collected:
    """RSA affinity at every split from single-task runs.

    Args:
        run_dirs: one single-task run (``recombination`` null) per task.
        tasks: optional task order; see the module docstring for the
            default.

    Returns:
        tuple: ``(tasks, layers, affinity, meta)``; ``layers`` are all the
        runs' splits and ``affinity`` has shape (L, N, N).
    """
    runs = _read_runs(run_dirs)
    by_task: Dict[str, ProbeRun] = {}
    for run in runs:
        if run.recombination is not None:
            target, source, split = run.recombination
            raise ValueError(
                f'{run.run_dir}: RSA uses single-task runs, but this run is '
                f'recombined (target={target}, source={source}, '
                f'split={split})')
        if len(run.tasks) != 1:
            raise ValueError(f'{run.run_dir}: RSA uses single-task runs, but '
                             f'this run trains {list(run.tasks)}')
        task = run.tasks[0]
        if task in by_task:
            raise ValueError(f'two runs for task {task!r}: '
                             f'{by_task[task].run_dir} and {run.run_dir}')
        by_task[task] = run
    order = _task_order(runs, tasks)
    missing = [t for t in order if t not in by_task]
    if missing:
        raise ValueError(f'no single-task run for task(s) {missing}')

    ref = runs[0]
    layers = list(ref.splits)
    missing_files = [
        by_task[t].features_path(t, s) for s in layers for t in order
        if not os.path.isfile(by_task[t].features_path(t, s))
    ]
    if missing_files:
        raise ValueError('missing feature file(s): ' +
                         ', '.join(missing_files))
    matrices = []
    for split in layers:
        feats = []
        for task in order:
            path = by_task[task].features_path(task, split)
            # Memory-map: rsa_affinity converts in chunks, so large feature
            # maps are never fully loaded as float64.
            arr = np.load(path, mmap_mode='r')
            if arr.ndim < 1 or arr.shape[0] != ref.num_samples:
                raise ValueError(f'{path}: shape {arr.shape}, expected '
                                 f'{ref.num_samples} samples (len of '
                                 'sample_indices) on the first axis')
            feats.append(arr)
        try:
            matrices.append(rsa_affinity(feats, tasks=order))
        except ValueError as e:
            raise ValueError(f'split {split!r}: {e}') from e

    meta = _provenance('rsa', ref)
    meta['runs'] = {t: os.path.abspath(by_task[t].run_dir) for t in order}
    return order, layers, np.stack(matrices), meta


def collect_tournament(run_dirs: Iterable[PathLike],
                       tasks: Optional[Sequence[str]] = None) -> Collected:
    """Tournament affinity at every swept split from recombined runs.

    For split l, target i and source j, the losses of run (target=i,
    source=j, split=l) on the target fill ``losses[i, j]``. A single-task
    run (``recombination`` null) of task i stands in for (i, i, l) at every
    l unless an explicit (i, i, l) run exists.

    Args:
        run_dirs: recombined runs, plus optionally single-task runs.
        tasks: optional task order; see the module docstring for the
            default.

    Returns:
        tuple: ``(tasks, layers, affinity, meta)``; ``layers`` are the names
        of the splits that recombined runs measured, shallow to deep, and
        ``affinity`` has shape (L, N, N). ``meta['performance']`` holds the
        (L, N, N) performance matrices P (row = target, column = source).
    """
    runs = _read_runs(run_dirs)
    explicit: Dict[Tuple[str, str, int], ProbeRun] = {}
    single: Dict[str, ProbeRun] = {}
    for run in runs:
        if run.recombination is None:
            if len(run.tasks) != 1:
                raise ValueError(
                    f'{run.run_dir}: recombination is null but the run '
                    f'trains {list(run.tasks)}; only a single-task run can '
                    'stand in for source == target')
            task = run.tasks[0]
            if task in single:
                raise ValueError(f'two single-task runs for task {task!r}: '
                                 f'{single[task].run_dir} and {run.run_dir}')
            single[task] = run
        else:
            for key in run.recombined:
                if key in explicit:
                    raise ValueError(
                        f'duplicate runs for target={key[0]}, '
                        f'source={key[1]}, split={key[2]}: '
                        f'{explicit[key].run_dir} and {run.run_dir}')
                explicit[key] = run
    if not explicit:
        raise ValueError('no recombined runs (all runs have recombination '
                         'null); the tournament needs Step 2 runs')
    order = _task_order(runs, tasks)
    ref = runs[0]
    measured = sorted({key[2] for key in explicit})
    layers = [ref.splits[l - 1] for l in measured]

    losses = np.empty((len(measured), len(order), len(order),
                       ref.num_samples))
    cache: Dict[str, np.ndarray] = {}
    used: List[Dict[str, Any]] = []
    missing: List[str] = []
    for li, split in enumerate(measured):
        for i, target in enumerate(order):
            for j, source in enumerate(order):
                run = explicit.get((target, source, split))
                stand_in = False
                if run is None and i == j and target in single:
                    run, stand_in = single[target], True
                if run is None:
                    missing.append(f'(target={target}, source={source}, '
                                   f'split={split} {layers[li]!r})')
                    continue
                if run.run_dir not in cache:
                    cache[run.run_dir] = run.losses()
                losses[li, i, j] = cache[run.run_dir][run.tasks.index(target)]
                used.append({
                    'target': target,
                    'source': source,
                    'split': split,
                    'run_dir': os.path.abspath(run.run_dir),
                    'single_task_stand_in': stand_in,
                })
    if missing:
        raise ValueError(f'missing runs for {len(missing)} (target, source, '
                         'split) combination(s): ' + ', '.join(missing))

    perf = []
    for li, layer in enumerate(layers):
        try:
            perf.append(performance_matrix(losses[li], tasks=order))
        except ValueError as e:
            raise ValueError(f'split {layer!r}: {e}') from e
    perf = np.stack(perf)
    affinity = (perf + perf.transpose(0, 2, 1)) / 2

    meta = _provenance('tournament', ref)
    meta['split_indices'] = measured
    meta['runs'] = used
    meta['performance'] = perf.tolist()
    return order, layers, affinity, meta
