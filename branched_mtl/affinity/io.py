"""Read and write affinity files (the output of Step 3).

An affinity file is JSON::

    {
      "tasks":    [N task names, fixed order],
      "blocks":   [L block names, shallow to deep: the model's
                   block_names],
      "method":   "tournament" | "rsa" | "tag" | another method's name,
      "affinity": L x N x N nested lists; affinity[l][i][j] is the affinity
                  of tasks[i] and tasks[j] after blocks[l],
      "meta":     {where it came from: run dirs, K, sample indices, date}
    }

Values are checked strictly: numbers only (no strings, no booleans), finite,
and in the range of the method (RSA: Spearman correlations in [-1, 1];
tournament: shares of a performance vector in [0, 1]; tag: TAG's lookahead
affinity scaled per split into [-1, 1], see :mod:`.tag`). A file that is not
UTF-8 JSON, nests too deeply, or holds a number too long to parse is refused
with an error that names the file. Files written before the key was named
``blocks`` (``layers``) are read as well.
"""
import json
import numbers
import os
from collections import Counter
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np

from branched_mtl.utils.errors import short_repr
from branched_mtl.utils.io import write_text_atomic
from .tournament import to_float64_array

__all__ = ['AFFINITY_METHODS', 'AFFINITY_RANGE', 'load_affinity',
           'save_affinity', 'validate_affinity']

# the package's affinity methods (branched_mtl/pipeline/methods/)
AFFINITY_METHODS = ('tournament', 'rsa', 'tag')
REQUIRED_KEYS = ('tasks', 'blocks', 'method', 'affinity', 'meta')
# the key's name in files written before it was ``blocks``
LEGACY_KEYS = {'layers': 'blocks'}
# the values each method can produce (rounding aside)
AFFINITY_RANGE = {'rsa': (-1.0, 1.0), 'tournament': (0.0, 1.0),
                  'tag': (-1.0, 1.0)}
RANGE_TOL = 1e-6
MAX_NAME_CHARS = 200
# an affinity file is a few KB per task; anything this large is not one
MAX_FILE_BYTES = 64 << 20

PathLike = Union[str, os.PathLike]


# affinities are read from JSON text; an asymmetry below this is rounding
SYMMETRY_TOL = 1e-6


def _check_names(names: Any, what: str, where: str) -> list:
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f'{where}: {what!r} must be a non-empty list of '
                         f'strings, got {short_repr(names)}')
    for idx, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}: {what}[{idx}] must be a non-empty '
                             f'string, got {short_repr(name)}')
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f'{where}: {what}[{idx}] is {len(name)} '
                             f'characters long ({short_repr(name)}); names '
                             f'have at most {MAX_NAME_CHARS}')
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise ValueError(f'{where}: {what} must be unique, duplicated: '
                         f'{short_repr(dups)}')
    return list(names)


def _position(index: Tuple[int, ...], tasks: Sequence[str],
              layers: Sequence[str]) -> str:
    text = 'affinity' + ''.join(f'[{i}]' for i in index)
    if len(index) == 3 and index[0] < len(layers) and max(
            index[1:]) < len(tasks):
        text = (f'block {short_repr(layers[index[0]])}, tasks '
                f'{short_repr(tasks[index[1]])} / '
                f'{short_repr(tasks[index[2]])} ({text})')
    return text


def _nested_numbers(value: Any, tasks: Sequence[str],
                    layers: Sequence[str], where: str) -> np.ndarray:
    """L x N x N nested lists of plain numbers -> float64 array.

    Three fixed loops, no recursion: whatever is nested deeper shows up as
    a list where a number belongs. Strings such as ``"0.5"`` and booleans
    are refused: numpy would silently convert them.
    """

    def as_list(item: Any, index: Tuple[int, ...]) -> Sequence:
        if not isinstance(item, (list, tuple)):
            raise ValueError(
                f'{where}: affinity must be L blocks x N tasks x N tasks '
                f'nested lists; at {_position(index, tasks, layers)} it has '
                f'{short_repr(item)}')
        return item

    def as_number(item: Any, index: Tuple[int, ...]) -> float:
        if isinstance(item, bool) or not isinstance(item, numbers.Real):
            raise ValueError(
                f'{where}: the affinity at {_position(index, tasks, layers)}'
                f' is {short_repr(item)} ({type(item).__name__}); affinity '
                'values must be numbers')
        try:
            return float(item)
        except OverflowError:  # an int beyond any float
            raise ValueError(
                f'{where}: the affinity at {_position(index, tasks, layers)}'
                ' is a number far outside the range of affinities'
                ) from None

    rows = [[[as_number(x, (l, i, j))
              for j, x in enumerate(as_list(row, (l, i)))]
             for i, row in enumerate(as_list(matrix, (l, )))]
            for l, matrix in enumerate(as_list(value, ()))]
    try:
        return np.asarray(rows, dtype=np.float64)
    except ValueError:  # rows of different lengths
        raise ValueError(
            f'{where}: the affinity\'s rows have different lengths; '
            'expected (L blocks, N tasks, N tasks) = '
            f'{(len(layers), len(tasks), len(tasks))}') from None


def _as_array(affinity: Any, tasks: Sequence[str], layers: Sequence[str],
              where: str) -> np.ndarray:
    if hasattr(affinity, 'detach') or isinstance(affinity, np.ndarray):
        kind = getattr(affinity, 'dtype', None)
        if kind is not None and (str(kind) == 'bool' or str(kind).endswith(
                '.bool') or (isinstance(kind, np.dtype)
                             and kind.kind not in 'iuf')):
            raise ValueError(f'{where}: affinity must hold numbers, got '
                             f'dtype {kind}')
        return to_float64_array(affinity, f'{where}: affinity')
    return _nested_numbers(affinity, tasks, layers, where)


def validate_affinity(tasks: Sequence[str],
                      layers: Sequence[str],
                      method: str,
                      affinity: Any,
                      meta: Any,
                      where: str = 'affinity') -> np.ndarray:
    """Check the parts of an affinity file.

    Args:
        tasks: N unique task names.
        layers: L unique block names.
        method: the affinity method's name: one of :data:`AFFINITY_METHODS`
            or the registered name of another (a Python identifier).
        affinity: (L, N, N) finite numbers.
        meta: a dict.
        where: prefix of error messages (e.g. the file path).

    Returns:
        np.ndarray: the affinity as a float64 array of shape (L, N, N).
    """
    _check_names(tasks, 'tasks', where)
    _check_names(layers, 'blocks', where)
    if not isinstance(method, str) or not method.isidentifier():
        raise ValueError(f'{where}: method must be the name of an affinity '
                         f'method ({", ".join(AFFINITY_METHODS)} or another '
                         f'registered one), got {short_repr(method)}')
    if not isinstance(meta, Mapping):
        raise ValueError(f'{where}: meta must be a dict, got '
                         f'{type(meta).__name__}')
    arr = _as_array(affinity, tasks, layers, where)
    expected = (len(layers), len(tasks), len(tasks))
    if arr.shape != expected:
        raise ValueError(f'{where}: affinity has shape {arr.shape}, expected '
                         f'(L blocks, N tasks, N tasks) = {expected}')
    bad = ~np.isfinite(arr)
    if bad.any():
        l, i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f'{where}: non-finite affinity {arr[l, i, j]} at '
                         f'{_position((l, i, j), tasks, layers)}')
    # another method's affinity: the tree search reads any similarity in
    # [-1, 1] (1: the same features)
    low, high = AFFINITY_RANGE.get(method, (-1.0, 1.0))
    bad = (arr < low - RANGE_TOL) | (arr > high + RANGE_TOL)
    if bad.any():
        l, i, j = (int(v) for v in np.argwhere(bad)[0])
        what = {'rsa': 'Spearman correlations',
                'tag': 'lookahead affinities scaled per split'}.get(
                    method, 'shares of a performance vector')
        raise ValueError(
            f'{where}: affinity {arr[l, i, j]:.6g} at '
            f'{_position((l, i, j), tasks, layers)} is outside [{low:g}, '
            f'{high:g}], the range of {method} affinities ({what}); '
            f'{int(bad.sum())} value(s) out of range. Recompute the file '
            'with tools/compute_affinity.py')
    # every method's affinity is symmetric (the tree cost reads A[i, j] as
    # A[j, i]); an asymmetric file was edited or written by something else
    asym = np.abs(arr - arr.transpose(0, 2, 1))
    if asym.size and asym.max() > SYMMETRY_TOL:
        l, i, j = (int(v) for v in np.unravel_index(asym.argmax(),
                                                    asym.shape))
        pairs = int((asym > SYMMETRY_TOL).sum()) // 2
        raise ValueError(
            f'{where}: affinity is not symmetric: at '
            f'{_position((l, i, j), tasks, layers)} it is {arr[l, i, j]:.6g} '
            f'but {arr[l, j, i]:.6g} the other way round ({pairs} pair(s) '
            f'differ by more than {SYMMETRY_TOL:g}). Recompute the file with '
            'tools/compute_affinity.py')
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
        layers: L unique block names (the model's ``block_names``).
        method: The affinity method's name (``'tournament'``, ``'rsa'``,
            ``'tag'`` or a registered one).
        affinity: (L, N, N) array-like or tensor.
        meta: JSON-serialisable provenance information.
    """
    path = os.fspath(path)
    arr = validate_affinity(tasks, layers, method, affinity, meta, path)
    doc = {
        'tasks': list(tasks),
        'blocks': list(layers),
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
        dict: ``tasks`` (list), ``blocks`` (list), ``method`` (str),
        ``affinity`` (float64 ndarray of shape (L, N, N)) and ``meta``
        (dict).
    """
    path = os.fspath(path)
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise ValueError(f'{path}: expected a JSON object, got '
                         f'{type(doc).__name__}')
    for old, new in LEGACY_KEYS.items():
        if old in doc and new not in doc:
            doc[new] = doc.pop(old)
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise ValueError(f'{path}: missing key(s) {missing}')
    arr = validate_affinity(doc['tasks'], doc['blocks'], doc['method'],
                            doc['affinity'], doc['meta'], path)
    return {
        'tasks': list(doc['tasks']),
        'blocks': list(doc['blocks']),
        'method': doc['method'],
        'affinity': arr,
        'meta': doc['meta'],
    }


def _read_json(path: str) -> Any:
    """The parsed file; every way it can fail names the file."""
    if os.path.isdir(path):
        raise ValueError(f'{path} is a folder; give an affinity .json file')
    size = os.path.getsize(path)  # FileNotFoundError names the file
    if size > MAX_FILE_BYTES:
        raise ValueError(f'{path}: {size:,} bytes is far too large for an '
                         'affinity file; is it the right file?')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ValueError(
            f'{path}: not UTF-8 text (byte {e.start}: '
            f'{raw[e.start:e.start + 1]!r}); affinity files are UTF-8 JSON '
            'as written by tools/compute_affinity.py') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from None
    except RecursionError:
        raise ValueError(f'{path}: JSON nested too deeply to be an affinity '
                         'file') from None
    except ValueError as e:
        # e.g. an integer of more than 4300 digits
        raise ValueError(f'{path}: cannot parse a value ({_first(e)})'
                         ) from None


def _first(e: BaseException, limit: int = 120) -> str:
    text = str(e)
    return text if len(text) <= limit else text[:limit] + '...'
