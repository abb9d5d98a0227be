"""Stage bookkeeping of the main job: atomic completion records that make a
rerun skip what is done and redo what a changed input invalidated, and
the progress lines with the time left."""
import hashlib
import json
import math
import os.path as osp
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from branched_mtl.utils import dump_json_atomic


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

    def done(self, name: str, fp: str) -> Optional[Dict[str, Any]]:
        """The stage's result if it finished with these inputs, else None."""
        path = self._record(name)
        if not osp.isfile(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError):
            return None
        if record.get('fingerprint') != fp:
            return None
        return record.get('result', {})

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
