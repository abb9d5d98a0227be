"""Output paths checked before any work, with messages that say what to do."""
import os
import os.path as osp
from typing import List, Tuple

from .errors import UserError

__all__ = ['check_work_dir', 'check_output_file', 'foreign_links',
           'check_no_foreign_links', 'is_inside']


def _cut(path: str, limit: int = 200) -> str:
    """A path fit for a one-line message: printable, at most ``limit``."""
    text = ''.join(c if c.isprintable() else '?' for c in path)
    return text if len(text) <= limit else text[:limit] + '...'


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path`` (resolved, links followed) lies in ``folder``."""
    real, root = osp.realpath(path), osp.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def foreign_links(folder: str, limit: int = 5) -> List[Tuple[str, str]]:
    """Symbolic links under ``folder`` that lead out of it (or nowhere).

    A tool writes into its work dir by name (logs appended, mmengine's
    ``last_checkpoint`` and config rewritten in place): through such a
    link it would overwrite a file the work dir does not own. Links whose
    target lies inside the folder are the folder's own and pass.

    Args:
        folder: The work dir (walked without following links).
        limit: Stop after this many.

    Returns:
        ``(link, target)`` pairs, at most ``limit``.
    """
    found = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = osp.join(top, name)
            if osp.islink(path) and not (osp.exists(path)
                                         and is_inside(path, folder)):
                found.append((path, os.readlink(path)))
                if len(found) >= limit:
                    return found
    return found


def check_no_foreign_links(folder: str, option: str = '--work-dir') -> None:
    """Refuse a work dir holding links that lead out of it.

    Raises:
        UserError: naming the first such link and its target.
    """
    links = foreign_links(folder) if osp.isdir(folder) else []
    if links:
        link, target = links[0]
        raise UserError(
            f'{option}: {_cut(link)} is a symbolic link to '
            f'{_cut(target)}, outside the work dir; a run would '
            'write through it into a file the work dir does not own. '
            f'Remove it ({len(links)} such link(s) found) or give another '
            + option)


def _file_in_path(path: str) -> str:
    """The first existing part of ``path`` that is not a folder, or ''."""
    part = path
    while part and not osp.exists(part):
        up = osp.dirname(part)
        if up == part:
            break
        part = up
    return part if part and osp.exists(part) and not osp.isdir(part) else ''


def _make_folder(folder: str, what: str, given: bool = False,
                 create: bool = True) -> None:
    blocker = _file_in_path(folder)
    if given and blocker == folder:
        raise UserError(f'{what} is a file, not a folder; give a folder '
                        '(it is created if missing)')
    if blocker:
        raise UserError(f'{what}: {blocker} is a file, not a folder; give a '
                        'path under a folder (missing folders are created)')
    if not create:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(f'{what}: the folder {folder} cannot be created '
                        f'({e.strerror}); give another path') from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f'{what}: the folder {folder} is not writable; give '
                        'a folder you can write to')


def check_work_dir(work_dir: str, option: str = '--work-dir',
                   create: bool = True) -> str:
    """Create ``work_dir`` (or, with ``create=False``, only check that it
    could be) or refuse it with a message that says why.

    Returns:
        The absolute path.

    Raises:
        UserError: when it (or a part of its path) is a file, or it cannot
            be created or written.
    """
    if not isinstance(work_dir, str) or not work_dir.strip():
        raise UserError(f'{option} {work_dir!r} is empty; give a folder (it '
                        'is created if missing)')
    path = osp.abspath(work_dir)
    _make_folder(path, f'{option} {work_dir}', given=True, create=create)
    return path


def check_output_file(path: str, option: str = '--out') -> str:
    """Make sure ``path`` can be written: its folder exists or can be made,
    and it is not itself a folder.

    Returns:
        The absolute path.

    Raises:
        UserError: naming the option and the part of the path at fault.
    """
    full = osp.abspath(path)
    if osp.isdir(full):
        raise UserError(f'{option} {path} is a folder; give a file name')
    _make_folder(osp.dirname(full), f'{option} {path}')
    return full
