"""Atomic writes: a result file is either complete or absent."""
import json
import os
import os.path as osp
import tempfile
from typing import Any


def write_text_atomic(text: str, path: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename.

    A reader (or a rerun after ``kill -9``) never sees a half-written file.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path),
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def dump_json_atomic(obj: Any, path: str, indent: int = 2) -> None:
    """``json.dump`` to ``path`` atomically."""
    write_text_atomic(json.dumps(obj, indent=indent) + '\n', path)
