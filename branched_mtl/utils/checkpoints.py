"""Checkpoints that are complete or absent, and resume from one that loads.

mmengine writes a checkpoint straight to its final name (``open(path,
'wb').write(...)``): a crash or a full disk leaves a file that looks like a
checkpoint but is cut short, and the next ``--resume`` dies on it. Here

* :func:`install_atomic_checkpoints` routes mmengine's checkpoint writes
  through a temp file beside the target, ``fsync`` and ``os.replace``, so a
  checkpoint under its final name is always whole;
* :func:`select_resume_checkpoint` picks the newest checkpoint of a work dir
  that really loads; newer ones that do not are reported by name and set
  aside (renamed ``*.corrupt``, never deleted);
* :func:`describe_load_error` turns torch's loading errors into a message
  that names the file and says what to do.
"""
import errno
import glob
import io
import os
import os.path as osp
import pickle
import re
import struct
import zipfile
from typing import Any, Callable, List, Optional

from .errors import CheckpointError, CheckpointMissing
from .io import mkstemp_shared

__all__ = [
    'atomic_save_checkpoint', 'install_atomic_checkpoints',
    'write_bytes_atomic', 'describe_load_error', 'checkpoint_error',
    'load_checkpoint_file', 'resume_candidates', 'select_resume_checkpoint',
    'set_aside', 'LOAD_ERRORS'
]

# torch.load fails on a damaged or foreign file with almost any exception
# type (EOFError, RuntimeError, UnpicklingError, struct.error, ...): any
# failure to read a checkpoint file is a problem of that file
LOAD_ERRORS = (Exception, )
_NUMBERED = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def _fsync_dir(folder: str) -> None:
    # the rename itself must reach the disk, or a power cut may undo it
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename.

    Raises:
        CheckpointError: when the write fails (a full disk ...); the temp
            file is removed and ``path`` is left as it was.
    """
    folder = osp.dirname(osp.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = mkstemp_shared(folder, '.' + osp.basename(path) + '.')
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(folder)
    except OSError as e:
        reason = ('the disk is full' if e.errno in (errno.ENOSPC,
                                                    errno.EDQUOT)
                  else e.strerror or type(e).__name__)
        raise CheckpointError(
            f'could not write checkpoint {path}: {reason} ({e}). Nothing '
            'half-written was left under that name; free space (or fix the '
            'folder) and run the same command again: training resumes from '
            'the last complete checkpoint') from e
    finally:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)


def atomic_save_checkpoint(checkpoint: dict,
                           filename: str,
                           file_client_args: Optional[dict] = None,
                           backend_args: Optional[dict] = None) -> None:
    """mmengine's ``save_checkpoint``, atomic for local files.

    Remote back ends (``s3://``, ``pavi://``) go to mmengine's own code.
    """
    from mmengine.runner import checkpoint as mm_checkpoint
    original = getattr(mm_checkpoint, '_branched_mtl_original_save',
                       mm_checkpoint.save_checkpoint)
    if not _is_local(filename) or file_client_args is not None or (
            backend_args and backend_args.get('backend', 'local') != 'local'):
        return original(checkpoint, filename, file_client_args,
                        backend_args)
    import torch
    with io.BytesIO() as buf:
        torch.save(checkpoint, buf)
        write_bytes_atomic(buf.getvalue(), filename)


def install_atomic_checkpoints() -> None:
    """Route mmengine's checkpoint writes through
    :func:`atomic_save_checkpoint` (idempotent).

    ``Runner.save_checkpoint`` (which ``CheckpointHook`` calls) uses the
    ``save_checkpoint`` name of ``mmengine.runner.runner``; the hook's
    publishing step imports it from ``mmengine.runner``. Both are replaced.
    """
    import importlib
    mm_checkpoint = importlib.import_module('mmengine.runner.checkpoint')
    if not hasattr(mm_checkpoint, '_branched_mtl_original_save'):
        mm_checkpoint._branched_mtl_original_save = \
            mm_checkpoint.save_checkpoint
    for name in ('mmengine.runner.runner', 'mmengine.runner'):
        module = importlib.import_module(name)
        if getattr(module, 'save_checkpoint', None) is not None:
            module.save_checkpoint = atomic_save_checkpoint


def describe_load_error(path: str, exc: BaseException) -> str:
    """Why ``path`` did not load, and what to do, in one message."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or not osp.exists(path):
        return (f'checkpoint {path} does not exist; give the path of an '
                'existing .pth file')
    if osp.isdir(path):
        return (f'checkpoint {path} is a folder, not a checkpoint file; '
                'give a .pth file')
    if isinstance(exc, PermissionError):
        return f'checkpoint {path} cannot be read: permission denied'
    unsafe = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text)
    if unsafe:
        return (f'checkpoint {path} holds {unsafe.group(1)}, a type that a '
                'checkpoint may not hold: loading it could run code, so it '
                'is refused. Use a checkpoint written by mmengine / '
                'torch.save of tensors; if you trust this file, load it '
                'once yourself and save its state_dict again')
    if isinstance(exc, (pickle.UnpicklingError, UnicodeDecodeError,
                        struct.error)) or 'Weights only' in text:
        return (f'{path} is not a checkpoint (torch cannot read it: '
                f'{_first_line(text)}); give a .pth file written by '
                'training')
    size = osp.getsize(path)
    if isinstance(exc, EOFError) or size == 0:
        return (f'checkpoint {path} is empty or cut short ({size} bytes; '
                'a crash or a full disk while it was written?); use '
                'another checkpoint or train again')
    with open(path, 'rb') as f:
        head = f.read(4)
    # torch's format is a zip archive: one cut short still starts like one
    cut_zip = head.startswith(b'PK') and not zipfile.is_zipfile(path)
    if cut_zip or 'zip archive' in text or 'central directory' in text or \
            isinstance(exc, zipfile.BadZipFile):
        return (f'checkpoint {path} is truncated or corrupt ({size} bytes, '
                'its zip archive is incomplete: a crash or a full disk '
                'while it was written?); use another checkpoint or train '
                'again')
    return (f'checkpoint {path} cannot be loaded ({type(exc).__name__}: '
            f'{_first_line(text)}); use another checkpoint or train again')


def checkpoint_error(path: str, exc: BaseException) -> CheckpointError:
    """The error to raise for ``exc`` while loading ``path``."""
    missing = isinstance(exc, FileNotFoundError) or not osp.exists(path)
    cls = CheckpointMissing if missing else CheckpointError
    return cls(describe_load_error(path, exc))


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ''
    return line if len(line) <= limit else line[:limit] + '...'


def load_checkpoint_file(path: str) -> Any:
    """``torch.load`` (weights only, on the CPU) with errors that name the
    file.

    Raises:
        CheckpointError: for a missing, truncated, corrupt or unsafe file.
    """
    import torch

    import branched_mtl.compat  # noqa: F401  (allow-lists mmengine's types)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except LOAD_ERRORS as e:
        raise checkpoint_error(path, e) from e


def _step(path: str) -> int:
    return int(_NUMBERED.match(osp.basename(path)).group(2))


def resume_candidates(work_dir: str) -> List[str]:
    """The work dir's numbered checkpoints (``iter_N.pth`` /
    ``epoch_N.pth``), newest first.

    The folder that ``last_checkpoint`` names counts too (a CheckpointHook
    with its own ``out_dir``). ``best_*`` checkpoints are never resumed
    from: they are the probe's choice, not the latest state.
    """
    folders = [work_dir]
    last = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(last, encoding='utf-8') as f:
            named = f.read().strip()
    except (OSError, UnicodeDecodeError):
        named = ''
    if named and _is_local(named):
        folders.append(osp.dirname(named) or work_dir)
    found = {}
    for folder in folders:
        for path in glob.glob(osp.join(glob.escape(folder), '*_*.pth')):
            if _NUMBERED.match(osp.basename(path)) and osp.isfile(path):
                found[osp.realpath(path)] = path
    return sorted(found.values(), key=_step, reverse=True)


def set_aside(path: str) -> str:
    """Rename a bad checkpoint to ``<path>.corrupt`` (``.corrupt.1``, ...
    if taken); return the new name. Never deletes."""
    target = f'{path}.corrupt'
    k = 0
    while osp.exists(target):
        k += 1
        target = f'{path}.corrupt.{k}'
    os.replace(path, target)
    return target


def select_resume_checkpoint(work_dir: str,
                             log: Callable[[str], None] = print,
                             rename: bool = True) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads.

    Every newer one that does not load is reported through ``log`` by name
    and, with ``rename``, set aside as ``*.corrupt`` when it lies in the
    work dir (a file elsewhere, named by ``last_checkpoint``, is left as it
    is); ``last_checkpoint`` is then pointed at the chosen file.

    Args:
        work_dir: The run's work dir.
        log: Where the reports go.
        rename: Set bad files aside and fix ``last_checkpoint`` (rank 0 of
            a distributed run only, so ranks do not race).

    Returns:
        The checkpoint to resume from, or None when none loads.
    """
    from .paths import is_inside
    for path in resume_candidates(work_dir):
        try:
            load_checkpoint_file(path)
        except CheckpointError as e:
            if rename and osp.exists(path) and not is_inside(path, work_dir):
                # another folder's file (last_checkpoint named it): reported,
                # never renamed from here
                log(f'{e}. It lies outside the work dir {work_dir}, so it '
                    'was left as it is; trying the previous checkpoint')
            elif rename and osp.exists(path):
                aside = set_aside(path)
                log(f'{e}. It was set aside as {aside} (not deleted); '
                    'resuming from the previous checkpoint')
            else:
                log(f'{e}; trying the previous checkpoint')
            continue
        if rename:
            _point_last_checkpoint(work_dir, path)
        return path
    return None


def _point_last_checkpoint(work_dir: str, path: str) -> None:
    last = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(last, encoding='utf-8') as f:
            if f.read().strip() == path:
                return
    except (OSError, UnicodeDecodeError):
        pass
    from .io import write_text_atomic
    write_text_atomic(path, last)
