"""RecombinationHook: assemble a recombined network from two checkpoints.

Step 2 of the method: for target task i, source task j and split l, the
bottom l blocks come from j's single-task model and stay frozen, the rest of
the encoder and i's head from i's single-task model. The hook does the
loading when training starts, so a recombined run is just a config.
"""
import functools
import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Set, Union

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from branched_mtl.registry import HOOKS
from .frozen_cache import FrozenFeatureCacheHook

__all__ = ['RecombinationHook', 'resolve_checkpoint', 'load_state_dict_file']


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a work dir -> the file its ``last_checkpoint``
    names.

    Args:
        path: A ``.pth`` file or an mmengine work dir (its
            ``last_checkpoint``, else its latest ``*_N.pth``).

    Returns:
        Path of an existing checkpoint file.
    """
    path = str(path)
    if osp.isdir(path):
        last = osp.join(path, 'last_checkpoint')
        if not osp.isfile(last):
            # a folder of checkpoints without mmengine's pointer file: the
            # latest iter_N / epoch_N, or its only .pth
            ckpts = glob.glob(osp.join(glob.escape(path), '*.pth'))
            numbered = [(int(m.group(1)), c) for c in ckpts
                        for m in [re.search(r'_(\d+)\.pth$', c)] if m]
            if len(ckpts) == 1:
                return ckpts[0]
            if numbered and len(numbered) == len(ckpts):
                return max(numbered)[1]
            raise FileNotFoundError(
                f'{path}: work dir without a last_checkpoint file and '
                f'without one latest checkpoint ({len(ckpts)} .pth files; '
                'has its training finished?)')
        with open(last, encoding='utf-8') as f:
            name = f.read().strip()
        if not name:
            raise ValueError(f'{last} is empty')
        # mmengine writes the path as seen from the training's cwd; a work
        # dir may have moved since, so its own folder is tried first
        for candidate in (osp.join(path, osp.basename(name)), name):
            if osp.isfile(candidate):
                return candidate
        raise FileNotFoundError(f'{last} names {name!r}, which does not '
                                'exist')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    return path


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Read the model state dict of an mmengine checkpoint.

    Every job of a sweep reads the same N single-task checkpoints; a sweep
    worker runs many jobs in one process, so a file is read once while it
    is unchanged (same size and modification time). The tensors are
    shared: callers copy them into their models and never change them.

    Args:
        path: Checkpoint file.

    Returns:
        The state dict (``module.`` prefixes of wrapped models removed).
    """
    stat = os.stat(path)
    return dict(_read_state_dict(osp.realpath(path), stat.st_size,
                                 stat.st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _read_state_dict(path: str, size: int,
                     mtime_ns: int) -> Dict[str, torch.Tensor]:
    from branched_mtl.utils.checkpoints import load_checkpoint_file

    # weights only: a checkpoint must not be able to run code; errors name
    # the file and say what to do (CheckpointError is a ValueError)
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if (not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values())):
        raise ValueError(f'checkpoint {path} holds no state_dict of tensors')
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state.items()}


def _head_tasks(state: Dict[str, torch.Tensor]) -> List[str]:
    prefix = 'head.task_heads.'
    return sorted({
        k[len(prefix):].split('.', 1)[0]
        for k in state if k.startswith(prefix)
    })


def _check_single_task(state: Dict[str, torch.Tensor], path: str,
                       task: Optional[str]) -> None:
    branched = sorted({
        k.split('.')[2] for k in state
        if k.startswith('encoder.nodes.') and k.split('.')[3] != '0'
    })
    if branched:
        raise ValueError(f'{path} is not a single-task checkpoint: its '
                         f'encoder has more than one group at block(s) '
                         f'{branched}')
    heads = _head_tasks(state)
    if task is not None and heads != [task]:
        raise ValueError(f'{path} holds the head(s) of task(s) {heads}, '
                         f'expected the single-task model of {task!r}')


@HOOKS.register_module()
class RecombinationHook(Hook):
    """Load a recombined network's weights at ``before_train``.

    Blocks below ``split`` (every group of them) are loaded from the source
    checkpoint; each group of the blocks from ``split`` on, which must hold
    one task, and each task's head (and neck) from that task's checkpoint.
    Every tensor of the model must be loaded and every key must match in
    name and shape; anything else is an error naming the file.

    The encoder must be built with ``frozen_blocks=split``, so the loaded
    bottom stays fixed (batch norm in eval mode too), and its outputs are
    computed once per training sample rather than once per epoch (a
    :class:`FrozenFeatureCacheHook`, exact; see ``feature_cache``). On resume
    (``runner.iter > 0``) nothing is loaded: the resumed checkpoint already
    holds the recombined weights.

    Args:
        source_checkpoint: Checkpoint (or work dir) of the source task's
            single-task model.
        target_checkpoints: ``{task: checkpoint or work dir}`` for every task
            of the model; a single path for a single-task model.
        split: Number of bottom blocks taken from the source.
        source_task: When given, the source checkpoint must hold this task's
            head (guards against swapped paths).
        feature_cache: Arguments of the :class:`FrozenFeatureCacheHook` this
            hook runs (``memory_budget``, ``cache_dir``); None computes the
            frozen bottom in every iteration, as before.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 source_checkpoint: str,
                 target_checkpoints: Union[str, Dict[str, str]],
                 split: int,
                 source_task: Optional[str] = None,
                 feature_cache: Optional[dict] = {}) -> None:  # noqa: B006
        if not isinstance(split, int) or isinstance(split, bool) or split < 1:
            raise ValueError('RecombinationHook: split must be an int >= 1 '
                             '(number of frozen bottom blocks), got '
                             f'{split!r}')
        if not isinstance(target_checkpoints, (str, dict)) or \
                not target_checkpoints:
            raise ValueError('RecombinationHook: target_checkpoints must be '
                             'a path or a non-empty {task: path} dict')
        self.source_checkpoint = str(source_checkpoint)
        self.target_checkpoints = target_checkpoints
        self.split = split
        self.source_task = source_task
        if feature_cache is not None and not isinstance(feature_cache, dict):
            raise ValueError('RecombinationHook: feature_cache must be a dict '
                             'of FrozenFeatureCacheHook arguments or None, '
                             f'got {feature_cache!r}')
        self.feature_cache = None if feature_cache is None else \
            FrozenFeatureCacheHook(**feature_cache)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.feature_cache is not None:
            self.feature_cache.before_train_iter(runner, batch_idx,
                                                 data_batch)

    def after_train(self, runner) -> None:
        if self.feature_cache is not None:
            self.feature_cache.after_train(runner)

    def before_train(self, runner) -> None:
        self._before_train(runner)
        # after the weights are loaded: the cache is keyed by them
        if self.feature_cache is not None:
            self.feature_cache.before_train(runner)

    def _before_train(self, runner) -> None:
        if runner.iter > 0:
            print_log(f'RecombinationHook: resumed at iter {runner.iter}, '
                      'weights come from the resumed checkpoint',
                      logger='current')
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self.load(model)

    def load(self, model: nn.Module) -> None:
        """Fill ``model`` from the source and target checkpoints.

        Args:
            model: An unwrapped ``BranchedMultiTaskModel``.
        """
        encoder, head = model.encoder, model.head
        tasks = list(model.tasks)
        if encoder.frozen_blocks != self.split:
            raise ValueError(
                f'RecombinationHook: split={self.split} but the encoder '
                f'freezes {encoder.frozen_blocks} block(s); set '
                f'model.encoder.frozen_blocks={self.split}')
        if self.split > encoder.num_blocks:
            raise ValueError(f'RecombinationHook: split={self.split} but the '
                             f'encoder has {encoder.num_blocks} blocks')
        targets = self.target_checkpoints
        if isinstance(targets, str):
            if len(tasks) != 1:
                raise ValueError(f'RecombinationHook: one target checkpoint '
                                 f'for a model of {len(tasks)} tasks {tasks}')
            targets = {tasks[0]: targets}
        if sorted(targets) != sorted(tasks):
            raise ValueError(f'RecombinationHook: target_checkpoints name '
                             f'tasks {sorted(targets)}, the model has '
                             f'{tasks}')

        cache: Dict[str, Dict[str, torch.Tensor]] = {}

        def read(path: str, task: Optional[str]) -> tuple:
            file = resolve_checkpoint(path)
            if file not in cache:
                cache[file] = load_state_dict_file(file)
            _check_single_task(cache[file], file, task)
            return file, cache[file]

        src_file, src_state = read(self.source_checkpoint, self.source_task)
        tgt = {t: read(p, t) for t, p in targets.items()}
        loaded: Set[str] = set()
        for b in range(encoder.num_blocks):
            for g, group in enumerate(encoder.branches[b]):
                if b < self.split:
                    file, state = src_file, src_state
                elif len(group) != 1:
                    raise ValueError(
                        f'RecombinationHook: block {encoder.block_names[b]} '
                        f'(>= split {self.split}) is shared by {group}; each '
                        'target needs its own branch above the split')
                else:
                    file, state = tgt[group[0]]
                self._load_into(encoder.nodes[b][g], state,
                                f'encoder.nodes.{b}.0.',
                                f'encoder.nodes.{b}.{g}.', file, loaded)
        for t in tasks:
            file, state = tgt[t]
            self._load_into(head.task_heads[t], state, f'head.task_heads.{t}.',
                            f'head.task_heads.{t}.', file, loaded)
            if getattr(head, 'necks', None) is not None:
                self._load_into(head.necks[t], state, f'head.necks.{t}.',
                                f'head.necks.{t}.', file, loaded)
        left = sorted(k for k in model.state_dict()
                      if k not in loaded
                      and not k.startswith('data_preprocessor.'))
        if left:
            raise ValueError(f'RecombinationHook: {len(left)} model tensor(s) '
                             f'not covered by the checkpoints, e.g. '
                             f'{left[:5]}')
        names = encoder.block_names
        print_log(
            f'RecombinationHook: blocks {names[:self.split]} (frozen) <- '
            f'{src_file}; blocks {names[self.split:]} and heads <- ' +
            ', '.join(f'{t}: {f}' for t, (f, _) in tgt.items()) +
            f' ({len(loaded)} tensors)', logger='current')

    @staticmethod
    def _load_into(module: nn.Module, state: Dict[str, torch.Tensor],
                   src_prefix: str, dst_prefix: str, file: str,
                   loaded: Set[str]) -> None:
        sub = {
            k[len(src_prefix):]: v
            for k, v in state.items() if k.startswith(src_prefix)
        }
        own = module.state_dict()
        missing = sorted(set(own) - set(sub))
        unexpected = sorted(set(sub) - set(own))
        if missing or unexpected:
            raise ValueError(
                f'{file}: keys under {src_prefix!r} do not match the '
                f'model\'s {dst_prefix!r}: missing {missing[:5]} '
                f'({len(missing)}), unexpected {unexpected[:5]} '
                f'({len(unexpected)})')
        bad = [(k, tuple(sub[k].shape), tuple(v.shape))
               for k, v in own.items() if sub[k].shape != v.shape]
        if bad:
            raise ValueError(f'{file}: shape mismatch under {src_prefix!r} '
                             f'(key, checkpoint, model): {bad[:5]}')
        module.load_state_dict(sub, strict=True)
        loaded.update(dst_prefix + k for k in own)
