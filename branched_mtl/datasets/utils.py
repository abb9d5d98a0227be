"""Helpers shared by the data sets."""
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def select_tasks(dataset: str, tasks: Optional[Sequence[str]],
                 known: Sequence[str]) -> Tuple[str, ...]:
    """The tasks a data set is asked for, checked against those it has.

    Args:
        dataset: The data set's name, for the error message.
        tasks: The requested tasks, or None for all of them.
        known: The tasks the data set provides.

    Returns:
        The requested tasks as a tuple.

    Raises:
        ValueError: naming the unknown tasks (or an empty request).
    """
    tasks = tuple(known if tasks is None else tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise ValueError(f'{dataset}: unknown task(s) {unknown} '
                         f'(tasks are {list(known)})')
    return tasks


def data_path(path: str, data_root: Optional[str]) -> str:
    """``path`` under ``data_root`` unless it is absolute (or no root).

    Args:
        path: A file or folder named in a config.
        data_root: The data set's root folder, or None.

    Returns:
        The path to open.
    """
    if data_root and not osp.isabs(path):
        return osp.join(data_root, path)
    return path


def require_file(path: str, dataset: str, what: str) -> str:
    """Fail early, naming the file and what it is, when it is missing.

    Args:
        path: The file.
        dataset: The data set's name, for the message.
        what: What the file is and where it comes from.

    Returns:
        ``path``.

    Raises:
        FileNotFoundError: naming ``path`` and ``what``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{dataset}: {path} does not exist; it '
                                f'should be {what}')
    return path


def import_h5py(path: str):
    """h5py, or an error saying that reading ``path`` needs it."""
    try:
        import h5py
    except ImportError as err:  # an optional dependency
        raise ImportError(f'reading {path} (a MATLAB v7.3 / HDF5 file) needs '
                          'h5py: pip install h5py') from err
    return h5py


def _h5_value(f, obj) -> Any:
    """A v7.3 variable in MATLAB's axis order: numbers, strings, cells."""
    h5py = import_h5py(f.filename)
    if isinstance(obj, h5py.Group):  # a struct: one entry per field
        return {k: _h5_value(f, obj[k]) for k in obj}
    data = obj[()]
    if obj.attrs.get('MATLAB_class') in (b'char', 'char'):
        return ''.join(map(chr, np.asarray(data).T.ravel()))
    if isinstance(data, np.ndarray) and data.dtype == object:  # a cell
        return [_h5_value(f, f[ref]) for ref in data.T.ravel()]
    # h5py reverses MATLAB's (column-major) axis order
    return np.asarray(data).T


def read_mat(path: str, what: str) -> Dict[str, Any]:
    """Read the variables of a MATLAB file (v5 with scipy, v7.3 with h5py).

    v5 variables come as scipy returns them (``squeeze_me=True``); v7.3
    variables are transposed back to MATLAB's axis order, strings decoded,
    cells as lists and structs as dicts, so both read the same way.

    Args:
        path: The ``.mat`` file.
        what: What the file is, for errors.

    Returns:
        ``{name: value}`` of the file's variables.

    Raises:
        ValueError: naming the file when it cannot be read.
    """
    import scipy.io
    try:
        return {k: v for k, v in scipy.io.loadmat(
            path, squeeze_me=True).items() if not k.startswith('__')}
    except NotImplementedError:  # v7.3: scipy asks for HDF5
        pass
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f'{what} {path} cannot be read as a MATLAB '
                         f'file: {err}') from err
    h5py = import_h5py(path)
    try:
        with h5py.File(path, 'r') as f:
            return {k: _h5_value(f, f[k]) for k in f
                    if not k.startswith('#')}
    except OSError as err:
        raise ValueError(f'{what} {path} cannot be read as a MATLAB '
                         f'file: {err}') from err


_HDF5_FILES: Dict[str, Tuple[int, Any]] = {}


def open_hdf5(path: str):
    """An open, read-only ``h5py.File`` of ``path`` for this process.

    Handles are kept per process: an HDF5 handle must not cross a fork into
    data loader workers, so a worker opens its own on first use (and the
    main process should read with a short-lived ``h5py.File`` instead).

    Args:
        path: The HDF5 (MATLAB v7.3) file.

    Returns:
        The ``h5py.File``.
    """
    pid = os.getpid()
    cached = _HDF5_FILES.get(path)
    if cached is None or cached[0] != pid:
        h5py = import_h5py(path)
        try:
            _HDF5_FILES[path] = (pid, h5py.File(path, 'r'))
        except OSError as err:
            raise FileNotFoundError(f'{path} cannot be opened as an HDF5 '
                                    f'file: {err}') from err
    return _HDF5_FILES[path][1]


def batch_sample_ids(data_samples) -> Optional[List[int]]:
    """Each sample's ``sample_idx`` (on the sample or, for multi-task
    samples, on its first per-task sample), or None when one lacks it."""
    ids = getattr(data_samples, 'sample_ids', None)
    if ids is not None:  # pre-collated batches carry them
        return list(ids)
    out = []
    for sample in data_samples or ():
        idx = sample.metainfo.get('sample_idx') if hasattr(
            sample, 'metainfo') else None
        if idx is None and hasattr(sample, 'keys'):
            for key in sample.keys():
                sub = sample.get(key)
                if hasattr(sub, 'metainfo') and \
                        'sample_idx' in sub.metainfo:
                    idx = sub.metainfo['sample_idx']
                    break
        if idx is None:
            return None
        out.append(int(idx))
    return out
