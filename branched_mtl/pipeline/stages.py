"""Stage bookkeeping of the main job: atomic completion records that make a
rerun skip what is done and redo what a changed input invalidated."""
import hashlib
import json
import os.path as osp
import shutil
from typing import Any, Dict, Optional

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
