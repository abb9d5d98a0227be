"""TAG's lookahead affinity (Fifty et al., NeurIPS 2021) in our affinity
format, and TAG's own selection of task groups.

The measurement itself runs in a training run (:class:`branched_mtl.engine.
hooks.TagHook`): every ``interval`` steps, for each task i and split l, one
step of the run's own optimiser on the encoder's blocks ``0..l`` with task
i's gradient alone, every task's loss on the same batch before and after,
then parameters and optimiser state restored. This module holds the numpy
side: the lookahead affinity

    Z[l, i -> j] = 1 - L_j(after) / L_j(before),   averaged over the run,

and its mapping into the affinity range the tree search reads (distance =
1 - A, :mod:`branched_mtl.tree.cost`). TAG's own group selection, which
turns Z into networks, is a tree step: :mod:`branched_mtl.tree.tag_selection`.

Mapping. The tree cost needs a symmetric A[l] in [-1, 1]. We symmetrise
S = (Z + Z^T) / 2 (the mean transfer between the two tasks, both
directions) and divide it by the tasks' own lookahead, the diagonal
D[l, i] = Z[l, i -> i] (how much a step on i's gradient lowers i's own
loss):

    A[l, i, j] = S[l, i, j] / sqrt(D[l, i] D[l, j]),   A[l, i, i] = 1,

clipped to [-1, 1]; a pair where either task's own lookahead is not
positive gets 0 (no evidence either way).

Why this scale: Z is a relative loss change per lookahead step, and a step
on the bottom block alone changes every loss far less than a step on the
whole encoder, so raw values at shallow splits are all near 0 (distance
near 1 for every pair, which makes the clustering cost prefer splitting
there). Each task's own lookahead at the same split is the natural unit:
A says how much a step for task i helps task j compared with how much it
helps i itself, like a correlation. An earlier version divided each split
by its largest off-diagonal |S|, which stretches a split whose transfers
are all noise to the full [-1, 1] range; the diagonal is a signal of the
same split, so near-zero noisy transfers stay near zero. The sign is kept
(a negative A is negative transfer, distance > 1) and, within a split of
equal diagonals, the order of the task pairs. The raw, directional Z and
the per-split scale (the geometric mean of the positive diagonal) are kept
in the file's ``meta`` (``lookahead``, ``scale``), where TAG's selection
reads Z (:func:`tag_lookahead`).

No torch import here: arrays only.
"""
import os
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np

from .io import load_affinity, save_affinity

__all__ = [
    'TAG_METHOD', 'lookahead_affinity', 'save_tag_affinity',
    'tag_lookahead', 'load_tag_affinity'
]

TAG_METHOD = 'tag'
PathLike = Union[str, os.PathLike]


def lookahead_affinity(z: Any) -> Tuple[np.ndarray, np.ndarray]:
    """TAG's lookahead affinity as an affinity tensor for the tree search.

    Args:
        z: (L, N, N) mean lookahead affinity, ``z[l, i, j]`` = Z[i -> j] at
            split l (task i stepped, task j measured).

    Returns:
        ``(affinity, scale)``: the symmetric (L, N, N) affinity in [-1, 1]
        with a diagonal of 1, each pair's mean transfer over the geometric
        mean of the two tasks' own lookahead (see the module docstring),
        and the (L,) geometric mean of each split's positive diagonal (0
        where none is positive: that split's affinity is then 0, every pair
        equally unrelated).

    Raises:
        ValueError: on a wrong shape or a non-finite value.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[1] != z.shape[2] or z.shape[1] < 1:
        raise ValueError(f'lookahead affinity must be (splits, tasks, tasks),'
                         f' got shape {z.shape}')
    if not np.isfinite(z).all():
        l, i, j = (int(v) for v in np.argwhere(~np.isfinite(z))[0])
        raise ValueError(f'lookahead affinity has a non-finite value '
                         f'{z[l, i, j]} at split {l}, tasks {i} -> {j}')
    n = z.shape[1]
    sym = (z + z.transpose(0, 2, 1)) / 2
    diag = np.diagonal(z, axis1=1, axis2=2)  # (L, N): own lookahead
    own = np.where(diag > 0, diag, 0.0)
    norm = np.sqrt(own[:, :, None] * own[:, None, :])
    out = np.zeros_like(sym)
    measured = norm > 0
    out[measured] = sym[measured] / norm[measured]
    out = np.clip(out, -1.0, 1.0)
    off = ~np.eye(n, dtype=bool)
    out[:, ~off] = 1.0
    scale = np.array([
        float(np.exp(np.log(d[d > 0]).mean())) if (d > 0).any() else 0.0
        for d in diag
    ])
    return out, scale


def save_tag_affinity(path: PathLike, tasks: Sequence[str],
                      layers: Sequence[str], z: Any, counts: Any,
                      meta: Mapping[str, Any]) -> np.ndarray:
    """Write the lookahead affinity as an affinity file (method ``tag``).

    Args:
        path: The ``.json`` file.
        tasks: N task names.
        layers: L split names (the encoder's blocks; split l steps blocks
            ``0..l``).
        z: (L, N, N) mean Z[i -> j].
        counts: (L, N, N) lookahead steps each mean is over.
        meta: Provenance (interval, optimiser, cost ...); ``lookahead``,
            ``counts`` and ``scale`` are added.

    Returns:
        The (L, N, N) affinity written.
    """
    z = np.asarray(z, dtype=np.float64)
    counts = np.asarray(counts)
    missing = np.argwhere(counts == 0)
    if len(missing):
        l, i, j = (int(v) for v in missing[0])
        raise ValueError(
            f'{os.fspath(path)}: no lookahead measured task {tasks[j]!r} '
            f'after a step of task {tasks[i]!r} at split {layers[l]!r}: '
            'did the run see batches labelled for both (and is the '
            "hook's interval shorter than the run)?")
    affinity, scale = lookahead_affinity(z)
    meta = dict(meta)
    meta.update(lookahead=z.tolist(), counts=counts.astype(int).tolist(),
                scale=scale.tolist(),
                mapping='A[l] = S[l] / max_{i!=j} |S[l]|, S = (Z + Z^T) / 2,'
                ' diagonal 1; Z[l][i][j] = Z[i -> j]')
    save_affinity(path, tasks, layers, TAG_METHOD, affinity, meta)
    return affinity


def tag_lookahead(doc: Mapping[str, Any], where: str = 'affinity'
                  ) -> np.ndarray:
    """The raw, directional Z of a ``tag`` affinity file (as loaded by
    :func:`load_affinity`).

    Returns:
        (L, N, N) float array, ``[l, i, j]`` = Z[i -> j].

    Raises:
        ValueError: when the file is not a TAG lookahead affinity.
    """
    if doc.get('method') != TAG_METHOD:
        raise ValueError(
            f'{where}: TAG\'s selection needs a lookahead affinity (method '
            f'{TAG_METHOD!r}, written by the TagHook or tools/branch.py '
            f'--affinity tag), got method {doc.get("method")!r}')
    n, num_layers = len(doc['tasks']), len(doc['blocks'])
    try:
        z = np.asarray(doc['meta']['lookahead'], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{where}: meta.lookahead (the directional Z) is '
                         'missing or not numbers') from None
    if z.shape != (num_layers, n, n) or not np.isfinite(z).all():
        raise ValueError(f'{where}: meta.lookahead must be finite numbers of '
                         f'shape {(num_layers, n, n)}, got {z.shape}')
    return z


def load_tag_affinity(path: PathLike) -> Dict[str, Any]:
    """:func:`load_affinity` plus the directional ``lookahead`` Z."""
    doc = load_affinity(path)
    doc['lookahead'] = tag_lookahead(doc, os.fspath(path))
    return doc
