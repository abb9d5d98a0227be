"""An affinity matched to a model: what every tree builder works on.

:class:`ModelBlocks` says what the builders need to know of a model (its
blocks, their parameters and FLOPs, the heads'); :func:`load_problem`
reads an affinity, puts its tasks in the model's order and matches its
blocks to the model's (an affinity measured at the deepest blocks only is
padded; :func:`check_unmeasured` holds a search to a budget that cannot
branch where nothing was measured).
"""
import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from branched_mtl.affinity.io import load_affinity
from .budget import Budget, shallowest_branch
from .config_writer import check_task_names
from .cost import reorder_affinity

__all__ = ['ModelBlocks', 'TreeProblem', 'read_affinity', 'load_problem',
           'check_unmeasured']

PathLike = Union[str, os.PathLike]
# an affinity file's path, or its document as read_affinity/load_affinity
# give it
AffinityLike = Union[PathLike, Mapping[str, Any]]


@dataclass(frozen=True)
class ModelBlocks:
    """What the tree builder needs to know about a model.

    Attributes:
        tasks: The model's task names, in its order.
        block_names: The sharable encoder blocks, shallow to deep.
        block_params: Parameters of one copy of each block.
        pools: p_l of each block (down-sampling steps to the output).
        head_params: Parameters of all task heads (and necks) together.
        block_flops: FLOPs per image of one copy of each block, or None
            when they were not counted (then no FLOPs budget).
        head_flops: FLOPs per image of every head together (with
            ``block_flops``).
        input_shape: (C, H, W) the FLOPs were counted at.
    """
    tasks: List[str]
    block_names: List[str]
    block_params: List[int]
    pools: List[int]
    head_params: int
    block_flops: Optional[List[int]] = None
    head_flops: Optional[int] = None
    input_shape: Optional[Tuple[int, ...]] = None

    def __post_init__(self) -> None:
        n = len(self.block_names)
        if not n:
            raise ValueError('the model has no sharable blocks')
        lengths = dict(block_params=len(self.block_params),
                       pools=len(self.pools))
        if self.block_flops is not None:
            lengths['block_flops'] = len(self.block_flops)
            if self.head_flops is None:
                raise ValueError('block_flops without head_flops')
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(
                f'{n} blocks {list(self.block_names)} but ' + ', '.join(
                    f'{v} {k}' for k, v in bad.items()))

    @classmethod
    def from_mapping(cls, info: Mapping[str, Any]) -> 'ModelBlocks':
        """From a dict with the same keys (what
        :func:`branched_mtl.models.describe_model` returns, optionally with
        ``block_flops``, ``head_flops``, ``input_shape``); other keys are
        ignored."""
        shape = info.get('input_shape')
        flops = info.get('block_flops')
        return cls(tasks=list(info['tasks']),
                   block_names=list(info['block_names']),
                   block_params=[int(p) for p in info['block_params']],
                   pools=[int(p) for p in info['pools']],
                   head_params=int(info['head_params']),
                   block_flops=None if flops is None else [int(f)
                                                           for f in flops],
                   head_flops=None if info.get('head_flops') is None else
                   int(info['head_flops']),
                   input_shape=None if shape is None else tuple(
                       int(s) for s in shape))

    def sizes(self, unit: str) -> Tuple[List[int], int]:
        """One copy of each block and all heads in a budget's unit:
        ``(block_params, head_params)``, or the FLOPs for ``'flops'``."""
        if unit == 'flops':
            return self.block_flops, self.head_flops
        return self.block_params, self.head_params

    def with_flops(self, block_flops: Sequence[int], head_flops: int,
                   input_shape: Sequence[int]) -> 'ModelBlocks':
        """A copy with the FLOPs per image counted at ``input_shape``."""
        return replace(self, block_flops=[int(f) for f in block_flops],
                       head_flops=int(head_flops),
                       input_shape=tuple(int(s) for s in input_shape))


BlocksLike = Union[ModelBlocks, Mapping[str, Any]]


@dataclass
class TreeProblem:
    """An affinity matched to a model: what every builder works on.

    Attributes:
        affinity: (L, N, N) float array, task axes in the model's order.
        tasks: The model's tasks.
        blocks: The model's blocks.
        doc: The affinity document (the file's task order).
        name: The affinity file's path ('the affinity' for a document
            without one), for messages.
        note: A line when the affinity's blocks are named unlike the
            model's blocks (matched by position), else None.
        unmeasured: How many of the shallowest blocks the affinity does
            not measure (0: every block). Their rows of ``affinity`` are
            1 (no clustering cost): only a budget under which no tree
            branches there may use such an affinity
            (:func:`check_unmeasured`).
    """
    affinity: np.ndarray
    tasks: List[str]
    blocks: ModelBlocks
    doc: Dict[str, Any]
    name: str
    note: Optional[str] = None
    unmeasured: int = 0


def _name(affinity: AffinityLike) -> str:
    if isinstance(affinity, Mapping):
        path = affinity.get('path')
        return os.fspath(path) if path else 'the affinity'
    return os.fspath(affinity)


def read_affinity(path: PathLike) -> Dict[str, Any]:
    """An affinity file, validated, for the builders.

    Args:
        path: The affinity JSON (step 3).

    Returns:
        :func:`branched_mtl.affinity.load_affinity`'s dict, plus ``path``
        (so that messages about a document name its file).

    Raises:
        ValueError: naming the file, when it is not an affinity file or its
            task names cannot be written into a config.
        FileNotFoundError: when there is no such file.
    """
    path = os.fspath(path)
    doc = load_affinity(path)
    check_task_names(doc['tasks'])
    doc['path'] = path
    return doc


def load_problem(affinity: AffinityLike, blocks: BlocksLike,
                 config: PathLike) -> TreeProblem:
    """Match an affinity to a model.

    Args:
        affinity: The affinity file's path, or its document (from
            :func:`read_affinity` or ``load_affinity``).
        blocks: The model's blocks (:class:`ModelBlocks`, or a dict of its
            fields such as ``describe_model`` returns).
        config: The model's config, for messages.

    Returns:
        The :class:`TreeProblem`, affinity in the model's task order.

    Raises:
        ValueError: naming the affinity when its tasks or blocks do not match
            the model.
    """
    doc = read_affinity(affinity) if not isinstance(
        affinity, Mapping) else dict(affinity)
    name = _name(doc)
    check_task_names(doc['tasks'])
    if not isinstance(blocks, ModelBlocks):
        blocks = ModelBlocks.from_mapping(blocks)
    config = os.fspath(config)
    tasks = check_task_names(blocks.tasks)
    try:
        aff = reorder_affinity(doc['affinity'], doc['tasks'], tasks)
    except ValueError as e:
        raise ValueError(f'{name} does not fit {config}: {e}') from None
    layers, names = list(doc['blocks']), list(blocks.block_names)
    missing = len(names) - len(layers)
    if 0 < missing and layers == names[missing:]:
        # measured at the deepest blocks only (a tournament sweep skips the
        # splits where its budget cannot branch): the shallow rows cost
        # nothing, and check_unmeasured holds the search to that budget
        pad = np.ones((missing, ) + aff.shape[1:])
        return TreeProblem(affinity=np.concatenate([pad, aff]), tasks=tasks,
                           blocks=blocks, doc=doc, name=name,
                           unmeasured=missing)
    if len(layers) != len(names) or aff.shape[0] != len(names):
        raise ValueError(
            f'{name} has {len(layers)} blocks {layers} but the model of '
            f'{config} has {len(names)} sharable blocks {names}: measure '
            'the affinity at every block')
    note = None
    if layers != names:
        note = (f'note: the affinity\'s blocks {layers} are named unlike '
                f'the model\'s {names}; matched by position')
    return TreeProblem(affinity=aff, tasks=tasks, blocks=blocks, doc=doc,
                       name=name, note=note)


def check_unmeasured(prob: TreeProblem, budget: Optional[Budget]) -> None:
    """Refuse a search that could branch where the affinity measured
    nothing.

    Args:
        prob: The matched affinity (``prob.unmeasured`` shallow blocks
            without a measurement).
        budget: The search's size budget, or None (alpha alone).

    Raises:
        ValueError: naming the affinity and the shallowest block a tree
            within the budget could branch at.
    """
    if not prob.unmeasured:
        return
    names = list(prob.blocks.block_names)
    measured = f'measures blocks {names[prob.unmeasured:]} only'
    if budget is None:
        raise ValueError(
            f'{prob.name} {measured}: a search by alpha alone may branch '
            'at any block; give a budget or measure every block')
    first = shallowest_branch(*prob.blocks.sizes(budget.unit), budget.value)
    if first is not None and first < prob.unmeasured:
        raise ValueError(
            f'{prob.name} {measured}, but a tree within the budget of '
            f'{budget.value:,} {budget.what} can branch at block '
            f'{names[first]!r}: measure the affinity from there on')
