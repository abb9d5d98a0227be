"""Read and write affinity files (the output of Step 3).

An affinity file is JSON::

    {
      "tasks":    [N task names, fixed order],
      "layers":   [L split names, shallow to deep],
      "method":   "tournament" | "rsa",
      "affinity": L x N x N nested lists; affinity[l][i][j] is the affinity
                  of tasks[i] and tasks[j] at layers[l],
      "meta":     {where it came from: run dirs, K, sample indices, date}
    }
"""
import json
import os
from collections import Counter
from typing import Any, Dict, Mapping, Sequence, Union

import numpy as np

from branched_mtl.utils.io import write_text_atomic
from .tournament import to_float64_array

__all__ = ['AFFINITY_METHODS', 'load_affinity', 'save_affinity',
           'validate_affinity']

AFFINITY_METHODS = ('tournament', 'rsa')
REQUIRED_KEYS = ('tasks', 'layers', 'method', 'affinity', 'meta')

PathLike = Union[str, os.PathLike]


def _check_names(names: Any, what: str, where: str) -> list:
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f'{where}: {what!r} must be a non-empty list of '
                         f'strings, got {names!r}')
    for idx, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}: {what}[{idx}] must be a non-empty '
                             f'string, got {name!r}')
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise ValueError(f'{where}: {what} must be unique, duplicated: '
                         f'{dups}')
    return list(names)


def validate_affinity(tasks: Sequence[str],
                      layers: Sequence[str],
                      method: str,
                      affinity: Any,
                      meta: Any,
                      where: str = 'affinity') -> np.ndarray:
    """Check the parts of an affinity file.

    Args:
        tasks: N unique task names.
        layers: L unique split names.
        method: one of :data:`AFFINITY_METHODS`.
        affinity: (L, N, N) finite numbers.
        meta: a dict.
        where: prefix of error messages (e.g. the file path).

    Returns:
        np.ndarray: the affinity as a float64 array of shape (L, N, N).
    """
    _check_names(tasks, 'tasks', where)
    _check_names(layers, 'layers', where)
    if method not in AFFINITY_METHODS:
        raise ValueError(f'{where}: method must be one of '
                         f'{AFFINITY_METHODS}, got {method!r}')
    if not isinstance(meta, Mapping):
        raise ValueError(f'{where}: meta must be a dict, got '
                         f'{type(meta).__name__}')
    arr = to_float64_array(affinity, f'{where}: affinity')
    expected = (len(layers), len(tasks), len(tasks))
    if arr.shape != expected:
        raise ValueError(f'{where}: affinity has shape {arr.shape}, expected '
                         f'(L layers, N tasks, N tasks) = {expected}')
    bad = ~np.isfinite(arr)
    if bad.any():
        l, i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f'{where}: non-finite affinity {arr[l, i, j]} at '
                         f'layer {layers[l]!r}, tasks {tasks[i]!r} / '
                         f'{tasks[j]!r}')
    return arr


def save_affinity(path: PathLike, tasks: Sequence[str],
                  layers: Sequence[str], method: str, affinity: Any,
                  meta: Mapping[str, Any]) -> None:
    """Validate and write an affinity file atomically.

    The JSON is written to a temporary file in the destination directory and
    moved into place with :func:`os.replace`, so a reader never sees a
    half-written file.

    Args:
        path: destination ``.json`` path; parent dirs are created.
        tasks: N unique task names (row/column order of the matrices).
        layers: L unique split names.
        method: ``'tournament'`` or ``'rsa'``.
        affinity: (L, N, N) array-like or tensor.
        meta: JSON-serialisable provenance information.
    """
    path = os.fspath(path)
    arr = validate_affinity(tasks, layers, method, affinity, meta, path)
    doc = {
        'tasks': list(tasks),
        'layers': list(layers),
        'method': method,
        'affinity': arr.tolist(),
        'meta': dict(meta),
    }
    # Serialise before touching the file system so a bad meta leaves no
    # temporary file behind.
    text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default)
    write_text_atomic(text + '\n', str(path))


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays commonly end up in meta (K, sample indices).
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f'meta: {type(obj).__name__} is not JSON serialisable')


def load_affinity(path: PathLike) -> Dict[str, Any]:
    """Read and validate an affinity file.

    Args:
        path: path of a file written by :func:`save_affinity`.

    Returns:
        dict: ``tasks`` (list), ``layers`` (list), ``method`` (str),
        ``affinity`` (float64 ndarray of shape (L, N, N)) and ``meta``
        (dict).
    """
    path = os.fspath(path)
    with open(path, encoding='utf-8') as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from e
    if not isinstance(doc, dict):
        raise ValueError(f'{path}: expected a JSON object, got '
                         f'{type(doc).__name__}')
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise ValueError(f'{path}: missing key(s) {missing}')
    arr = validate_affinity(doc['tasks'], doc['layers'], doc['method'],
                            doc['affinity'], doc['meta'], path)
    return {
        'tasks': list(doc['tasks']),
        'layers': list(doc['layers']),
        'method': doc['method'],
        'affinity': arr,
        'meta': doc['meta'],
    }
