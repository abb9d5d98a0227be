"""A branched model from its config and checkpoint, for inference and export.

The checkpoint must be one of the config's network: same tasks, same tree
(``model.encoder.branches``), same blocks. A checkpoint of another tree can
load without an error when only the grouping differs (the same number of
copies per block, the tasks grouped otherwise), and would then predict with
the wrong branch per task, so the tree is compared first: the one recorded
in the checkpoint's config (mmengine saves the config's text in
``meta['cfg']``; it is parsed, never executed), else the number of copies
of each block that its parameter names show.
"""
import ast
import copy
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from torch import nn

from branched_mtl.utils.checkpoints import load_checkpoint_file
from branched_mtl.utils.errors import UserError

__all__ = ['init_model', 'check_checkpoint_fits', 'checkpoint_tree',
           'one_line_tree']

_NODE_KEY = re.compile(r'^encoder\.nodes\.(\d+)\.(\d+)\.')
_HEAD_KEY = re.compile(r'^head\.task_heads\.([^.]+)\.')


def one_line_tree(branches: Sequence[Sequence[Sequence[str]]],
                  block_names: Optional[Sequence[str]] = None) -> str:
    """A tree on one line: ``stem: [a b c] / layer4: [a] [b c]``."""
    parts = []
    for b, partition in enumerate(branches):
        name = block_names[b] if block_names else f'block{b}'
        parts.append(f'{name}: ' + ' '.join(
            '[' + ' '.join(g) + ']' for g in partition))
    return ' / '.join(parts)


def _partitions(branches: Sequence) -> List[frozenset]:
    return [frozenset(frozenset(g) for g in partition)
            for partition in branches]


def _find_branches(node: ast.AST) -> Optional[ast.AST]:
    """The value of ``branches`` inside ``encoder`` inside ``model``."""
    def value_of(tree: ast.AST, key: str) -> Optional[ast.AST]:
        if isinstance(tree, ast.Call):
            for kw in tree.keywords:
                if kw.arg == key:
                    return kw.value
        if isinstance(tree, ast.Dict):
            for k, v in zip(tree.keys, tree.values):
                if isinstance(k, ast.Constant) and k.value == key:
                    return v
        return None

    model = None
    for stmt in getattr(node, 'body', []):
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model'
                for t in stmt.targets):
            model = stmt.value
    encoder = value_of(model, 'encoder') if model is not None else None
    return value_of(encoder, 'branches') if encoder is not None else None


def checkpoint_tree(checkpoint: dict) -> Optional[List]:
    """The tree (``model.encoder.branches``) of the config a checkpoint was
    trained with, read from ``meta['cfg']``.

    The config text is parsed with :mod:`ast` and only the literal is
    evaluated: a checkpoint is data, and running its text as Python would
    let it run code (the reason checkpoints load with ``weights_only``).

    Returns:
        The tree, ``[]`` for ``branches=None`` (all shared), or None when
        the checkpoint records no config (a bare state dict) or its tree is
        not a literal.
    """
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not isinstance(text, str):
        return None
    try:
        value = _find_branches(ast.parse(text))
        if value is None:
            return None
        branches = ast.literal_eval(value)
    except (SyntaxError, ValueError):
        return None
    return [] if branches is None else branches


def _node_counts(keys: Sequence[str]) -> Dict[int, int]:
    """Copies of each block that an encoder state dict holds."""
    nodes: Dict[int, set] = {}
    for key in keys:
        match = _NODE_KEY.match(key)
        if match:
            nodes.setdefault(int(match.group(1)), set()).add(
                int(match.group(2)))
    return {b: len(n) for b, n in nodes.items()}


def _head_tasks(keys: Sequence[str]) -> List[str]:
    return list(dict.fromkeys(
        m.group(1) for m in map(_HEAD_KEY.match, keys) if m))


def check_checkpoint_fits(model: nn.Module, checkpoint: dict,
                          path: str) -> Dict[str, torch.Tensor]:
    """The checkpoint's state dict, once it is known to be ``model``'s.

    Args:
        model: A built :class:`BranchedMultiTaskModel`.
        checkpoint: What :func:`load_checkpoint_file` returned.
        path: The checkpoint's path (for the messages).

    Returns:
        The state dict to load.

    Raises:
        UserError: one line naming the checkpoint and what differs: the
            tasks, the tree, or the parameters (missing, unexpected or of
            another shape).
    """
    if not isinstance(checkpoint, dict):
        raise UserError(f'checkpoint {path} holds a '
                        f'{type(checkpoint).__name__}, not a state dict; give '
                        'a .pth file written by training')
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    tasks, ck_tasks = list(model.tasks), _head_tasks(list(state))
    if ck_tasks and sorted(ck_tasks) != sorted(tasks):
        raise UserError(f'checkpoint {path} is of tasks {ck_tasks}, the '
                        f'config\'s model has tasks {tasks}; give the config '
                        'the checkpoint was trained with')
    encoder = model.encoder
    names = list(encoder.block_names)
    tree = encoder.branches
    recorded = checkpoint_tree(checkpoint)
    if recorded is not None and len(recorded) == len(tree):
        if _partitions(recorded) != _partitions(tree):
            raise UserError(
                f'checkpoint {path} was trained with another tree '
                f'({one_line_tree(recorded, names)}) than the config\'s '
                f'model.encoder.branches ({one_line_tree(tree, names)}); '
                'give the config the checkpoint was trained with')
    counts, want = _node_counts(list(state)), _node_counts(list(own))
    differ = [b for b in want if counts.get(b, 0) != want[b]]
    if counts and differ:
        b = differ[0]
        raise UserError(
            f'checkpoint {path} is of another tree: it holds '
            f'{counts.get(b, 0)} copies of block {names[b]} where the '
            f'config\'s model.encoder.branches '
            f'({one_line_tree(tree, names)}) has {want[b]}; give the config '
            'the checkpoint was trained with')
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
              for k in own if k in state and hasattr(state[k], 'shape')
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f'{len(v)} {what} (e.g. {v[0]})' for what, v in (
            ('missing parameters', missing),
            ('unexpected parameters', unexpected),
            ('of another shape, checkpoint vs config', shapes)) if v]
        raise UserError(f'checkpoint {path} does not fit the config\'s '
                        f'model: {"; ".join(parts)}; give the config the '
                        'checkpoint was trained with')
    return state


def init_model(config: Union[str, Config, dict],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a branched model and load its checkpoint, in eval mode.

    Args:
        config: Config file, or a loaded config.
        checkpoint: Its checkpoint; None keeps the initial weights (for
            tests and export checks only).
        device: Where the model goes.
        cfg_options: Overrides of the config (``--cfg-options``).

    Returns:
        The model, with ``cfg`` (the config) and ``dataset_meta`` (the
        checkpoint's, else the test data set's class metainfo) attached.

    Raises:
        UserError: a missing config or checkpoint, an unreadable checkpoint
            or one of another network (see :func:`check_checkpoint_fits`).
    """
    from mmengine.model import revert_sync_batchnorm

    from branched_mtl.registry import MODELS
    if isinstance(config, str):
        if not osp.isfile(config):
            raise UserError(f'config file {config} does not exist')
        cfg = Config.fromfile(config)
    else:
        cfg = copy.deepcopy(config) if isinstance(config, Config) \
            else Config(copy.deepcopy(dict(config)))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'encoder' not in cfg.get('model', {}):
        raise UserError(f'config {getattr(cfg, "filename", config)} has no '
                        'model.encoder: not a BranchedMultiTaskModel config')
    loaded = None
    if checkpoint is not None:
        # before building: a missing file is reported before any work
        loaded = load_checkpoint_file(checkpoint)
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    model = MODELS.build(cfg.model)
    if loaded is not None:
        model.load_state_dict(check_checkpoint_fits(model, loaded,
                                                    checkpoint))
    else:
        _quiet_init(model)
    model = revert_sync_batchnorm(model) if device == 'cpu' else model
    model.cfg = cfg
    meta = (loaded.get('meta') if isinstance(loaded, dict) else None) or {}
    model.dataset_meta = dict(meta.get('dataset_meta') or
                              dataset_metainfo(cfg))
    return model.to(device).eval()


def _quiet_init(model: nn.Module) -> None:
    """``init_weights`` without mmengine's line per parameter (only
    models without a checkpoint get here: tests, export checks)."""
    import logging

    from branched_mtl.utils.console import quiet_logger
    with quiet_logger(logging.WARNING):
        model.init_weights()


def dataset_metainfo(cfg: Config) -> Dict[str, Any]:
    """The class metainfo (``METAINFO``: classes, palette, tasks ...) of the
    config's test data set, without building it (a data set may render or
    read thousands of samples)."""
    from branched_mtl.registry import DATASETS
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    while isinstance(dataset, (dict, ConfigDict)):
        name = str(dataset.get('type', '')).rpartition('.')[2]
        cls = DATASETS.get(name) if name else None
        if cls is not None and getattr(cls, 'METAINFO', None) and \
                name not in ('ProbeSplit', ):
            return dict(cls.METAINFO)
        dataset = dataset.get('dataset')
    return {}
