"""Atomic writes: a result file is either complete or absent."""
import contextlib
import json
import os
import os.path as osp
import tempfile
from typing import IO, Any, Iterator


def current_umask() -> int:
    """This process's umask, read without changing it where Linux allows
    (``/proc/self/status``; ``os.umask`` twice elsewhere)."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp_shared(folder: str, prefix: str, suffix: str = '.tmp'):
    """``tempfile.mkstemp`` with the mode an ordinary new file gets.

    mkstemp creates its file 0600; renamed to a result's name, a
    checkpoint, report or record would be unreadable to the group that
    shares a cluster folder. The file gets ``0666 & ~umask``, as
    ``open(path, 'w')`` would give it.

    Returns:
        ``(fd, path)``.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:  # a file system without modes: keep mkstemp's
        pass
    return fd, tmp


@contextlib.contextmanager
def open_atomic(path: str, mode: str = 'w') -> Iterator[IO]:
    """Open a temp file beside ``path``; on success rename it to ``path``.

    A reader (or a rerun after ``kill -9``) never sees a half-written file;
    on an error the temp file is removed and ``path`` is left as it was.

    Args:
        path: The final file.
        mode: ``'w'`` (text, utf-8) or ``'wb'``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = mkstemp_shared(folder, '.' + osp.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if 'b' in mode else
                                    dict(encoding='utf-8'))) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def open_append(path: str, binary: bool = False,
                buffering: int = -1) -> IO:
    """Open ``path`` to append, never through a symbolic link.

    A log under a fixed name (``train.log``, ``attempts.log``) is appended
    to, not replaced; a link planted under that name would otherwise make
    the run write into its target.

    Raises:
        UserError: ``path`` is a symbolic link.
    """
    from .errors import UserError
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError:
        if osp.islink(path):
            raise UserError(f'{path} is a symbolic link; a run appends to '
                            'that file and must not write through a link. '
                            'Remove it') from None
        raise
    if binary:
        return os.fdopen(fd, 'ab', buffering=buffering)
    return os.fdopen(fd, 'a', buffering=buffering, encoding='utf-8')


def write_text_atomic(text: str, path: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with open_atomic(path) as f:
        f.write(text)


def dump_json_atomic(obj: Any, path: str, indent: int = 2) -> None:
    """``json.dump`` to ``path`` atomically."""
    write_text_atomic(json.dumps(obj, indent=indent) + '\n', path)
