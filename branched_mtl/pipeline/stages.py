"""Stage bookkeeping of the main job: atomic completion records that make a
rerun skip what is done and redo what a changed input invalidated, and
the progress lines with the time left."""
import hashlib
import json
import math
import os
import os.path as osp
import shutil
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from branched_mtl.utils import dump_json_atomic
from branched_mtl.utils.checkpoints import resume_candidates
from branched_mtl.utils.errors import short_repr
from branched_mtl.utils.lock import LOCK_NAME, WorkDirLock

# what a stage's training started with, written before its first step
STARTED = 'started.json'


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able inputs (configs as text, numbers, other
    stages' fingerprints)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageBook:
    """Completion records under ``<work_dir>/stages/<name>.json``.

    A record is written last, atomically, once a stage's outputs exist; it
    holds the stage's fingerprint and a small result dict. A record whose
    fingerprint no longer matches means the stage's inputs changed: its
    folder is cleared and it runs again.

    Args:
        work_dir: The main job's work dir.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir

    def _record(self, name: str) -> str:
        return osp.join(self.work_dir, 'stages', name.replace('/', '__') +
                        '.json')

    def done(self, name: str, fp: str,
             *older: str) -> Optional[Dict[str, Any]]:
        """The stage's result if it finished with these inputs, else None.

        Args:
            name: The stage.
            fp: Its fingerprint.
            older: Fingerprints the same inputs had under an older key; a
                record found under one is recorded again under ``fp``.
        """
        record = _read_record(self._record(name))
        if record is None or record.get('fingerprint') not in (fp, *older):
            return None
        result = record.get('result', {})
        if record['fingerprint'] != fp:
            self.finish(name, fp, result)
        return result

    def twin(self, fp: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """A finished stage of this book with fingerprint ``fp`` under any
        name, its own included: the same model (same config and seed),
        e.g. a method's network that comes out the same at two budgets of
        a sweep.

        Returns:
            ``(name, result)`` of the first such record by name, or None.
        """
        for entry, record in _records(osp.join(self.work_dir, 'stages')):
            if record.get('fingerprint') == fp:
                return (entry[:-len('.json')].replace('__', '/'),
                        record.get('result', {}))
        return None

    def stale(self, name: str, fp: str) -> bool:
        """True when a record exists for other inputs."""
        path = self._record(name)
        return osp.isfile(path) and self.done(name, fp) is None

    def reset(self, name: str, folder: Optional[str]) -> None:
        """Forget a stage and clear its folder (stale checkpoints must not be
        resumed)."""
        path = self._record(name)
        if osp.isfile(path):
            import os
            os.remove(path)
        if folder and osp.isdir(folder):
            shutil.rmtree(folder)

    def finish(self, name: str, fp: str, result: Dict[str, Any]) -> None:
        dump_json_atomic(dict(fingerprint=fp, result=result),
                         self._record(name))


def find_model(root: str, model: str) -> Optional[Tuple[str, Dict[str, Any]]]:
    """A finished stage anywhere under ``root`` that trained the same model
    (``model``: :meth:`~.stage_runner.StageRunner.model_key`), e.g. a random
    tree of one method that is another method's tree at the same seed.

    Args:
        root: The folder whose stage books are searched (a seed's folder of
            a comparison holds every method's and budget's books).
        model: The model's key.

    Returns:
        ``(record path relative to root, result)`` of the first such record
        in sorted order, or None.
    """
    for folder, dirs, _ in os.walk(root):
        dirs.sort()
        if osp.basename(folder) != 'stages':
            continue
        for entry, record in _records(folder):
            result = record.get('result')
            if isinstance(result, dict) and result.get('model') == model:
                return osp.relpath(osp.join(folder, entry), root), result
    return None


def _records(folder: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(file name, record)`` of a stage book's readable records, by name."""
    if not osp.isdir(folder):
        return
    for entry in sorted(os.listdir(folder)):
        if entry.endswith('.json'):
            record = _read_record(osp.join(folder, entry))
            if record is not None:
                yield entry, record


def _read_record(path: str) -> Optional[Dict[str, Any]]:
    """A small JSON record, or None when missing or unreadable (a record
    nested too deep for the parser counts as unreadable)."""
    try:
        with open(path, encoding='utf-8') as f:
            record = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _differences(old: Optional[Dict[str, Any]],
                 new: Dict[str, Any]) -> List[str]:
    """What changed between two start records, in words."""
    if old is None:
        return ['no record of the inputs it started with']
    words = []
    for key, value in new.items():
        if key == 'fingerprint' or old.get(key) == value:
            continue
        if key == 'config_sha256':
            words.append('another config')
        else:
            words.append(f'{key} {short_repr(old.get(key), 40)} (now '
                         f'{short_repr(value, 40)})')
    return words or ['other inputs']


def start_training(name: str, folder: str, config_text: str,
                   options: Dict[str, Any],
                   log: Callable[[str], None]) -> None:
    """Make ``folder`` hold a run of these inputs only, before it trains.

    A stage killed mid-training has no completion record, only its
    checkpoints; resuming them under another seed, config or option would
    record the new inputs over a curve the old ones began. So the inputs
    are recorded in ``<folder>/started.json`` before the first step, and
    a rerun resumes only when they match; else the folder is cleared (its
    lock file kept, under that lock) and the log says why.

    Args:
        name: The stage, for the log.
        folder: The stage's training work dir.
        config_text: The config it trains (seed included).
        options: Other inputs that change the training (seed, processes).
        log: Where the reason for a clearing goes.

    Raises:
        WorkDirBusy: another process trains in ``folder``.
    """
    record = dict(config_sha256=hashlib.sha256(
        config_text.encode()).hexdigest(), **options)
    record['fingerprint'] = fingerprint(record)
    path = osp.join(folder, STARTED)
    old = _read_record(path)
    stale = (old is not None or bool(resume_candidates(folder))) and (
        old is None or old.get('fingerprint') != record['fingerprint'])
    if stale:
        with WorkDirLock(folder, f'clearing stage {name}'):
            for entry in os.listdir(folder):
                if entry == LOCK_NAME:
                    continue
                full = osp.join(folder, entry)
                if osp.isdir(full) and not osp.islink(full):
                    shutil.rmtree(full)
                else:
                    os.remove(full)
        log(f'  {name}: the unfinished run in {folder} started with '
            f'{", ".join(_differences(old, record))}; resuming it would mix '
            'two runs, so it was cleared and trains from the start')
    os.makedirs(folder, exist_ok=True)
    if old is None or stale:
        dump_json_atomic(record, path)


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s`` (rounded to the second)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f'{hours}h{minutes:02d}m'
    if minutes:
        return f'{minutes}m{secs:02d}s'
    return f'{secs}s'


class Progress:
    """One console line per stage: the job's elapsed time and an estimate of
    the time left.

    Each stage has a kind (``single``: a single-task model, ``multi``: a
    multi-task model, ``other``) and a weight, its expected cost relative to
    a single-task model. The time left is the remaining weight times the
    seconds per weight that the stages of the same kind took in this run
    (all kinds together until one of that kind has run). Stages skipped on a
    rerun take no time and teach nothing, so they are left out of the rate.
    Per-stage times go to ``<work_dir>/stage_times.json``.

    Args:
        stages: ``(name, kind, weight)`` of every stage, in order.
        log: Where the lines go.
        work_dir: The job's work dir (for ``stage_times.json``), or None.
        clock: Seconds (monotonic); replaceable in tests.
    """

    def __init__(self, stages: List[Tuple[str, str, float]],
                 log: Callable[[str], None],
                 work_dir: Optional[str] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        names = [s[0] for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f'Progress: stage names repeat: {names}')
        for name, kind, weight in stages:
            if kind not in ('single', 'multi', 'other') or not (
                    math.isfinite(weight) and weight >= 0):
                raise ValueError(f'Progress: stage {name!r} has kind '
                                 f'{kind!r} and weight {weight!r}')
        self.stages = list(stages)
        self.log = log
        self.work_dir = work_dir
        self.clock = clock
        self.begin = clock()
        self.times: Dict[str, Dict[str, Any]] = {}
        self._current: Optional[str] = None
        self._started = 0.0
        self._skipped = False

    def _rate(self, kind: str) -> Optional[float]:
        """Seconds per unit of weight from the stages that ran, or None."""
        def rate(kinds: Tuple[str, ...]) -> Optional[float]:
            ran = [(t['seconds'], t['weight']) for t in self.times.values()
                   if t['kind'] in kinds and not t['skipped']
                   and t['weight'] > 0]
            weight = sum(w for _, w in ran)
            return sum(s for s, _ in ran) / weight if weight else None
        own = rate((kind, ))
        return own if own is not None else rate(('single', 'multi',
                                                  'other'))

    def time_left(self, index: int) -> Optional[float]:
        """Estimated seconds for stages ``index`` onwards, or None before
        any stage ran."""
        total = 0.0
        for _, kind, weight in self.stages[index:]:
            rate = self._rate(kind)
            if rate is None:
                return None
            total += rate * weight
        return total

    def start(self, name: str) -> None:
        """End the running stage (if any) and log the line of ``name``."""
        self._end()
        index = [s[0] for s in self.stages].index(name)
        elapsed = self.clock() - self.begin
        left = self.time_left(index)
        estimate = ('estimate after the first stage' if left is None else
                    f'about {format_duration(left)} left')
        self.log(f'[branch] stage {index + 1} of {len(self.stages)}: {name} '
                 f'| elapsed {format_duration(elapsed)} | {estimate}')
        self._current, self._started, self._skipped = name, self.clock(), \
            False

    def set_weights(self, stages: List[Tuple[str, str, float]]) -> None:
        """New weights (e.g. once the tree's size is known); the stages and
        their order stay."""
        if [s[0] for s in stages] != [s[0] for s in self.stages]:
            raise ValueError('Progress.set_weights: other stages than '
                             f'{[s[0] for s in self.stages]}')
        self.stages = list(stages)

    def skipped(self) -> None:
        """The running stage was done earlier (a rerun): no work."""
        self._skipped = True

    def finish(self) -> float:
        """End the last stage; return the job's elapsed seconds."""
        self._end()
        return self.clock() - self.begin

    def _end(self) -> None:
        if self._current is None:
            return
        kind, weight = next((k, w) for n, k, w in self.stages
                            if n == self._current)
        self.times[self._current] = dict(
            kind=kind, weight=weight, skipped=self._skipped,
            seconds=self.clock() - self._started)
        self._current = None
        if self.work_dir is not None:
            dump_json_atomic(
                dict(elapsed=self.clock() - self.begin, stages=self.times),
                osp.join(self.work_dir, 'stage_times.json'))
