"""TagHook: TAG's lookahead task affinity, measured during one multi-task
training run (Fifty et al., NeurIPS 2021).

Every ``interval`` iterations, before the run's own step on a batch, the
hook takes for each task i and split l one step of the run's optimiser
(its own update rule and state: momentum, Adam moments, weight decay, the
current learning rate) on the encoder's blocks ``0..l`` with task i's
gradient alone, measures every task's loss on the same batch, and restores
the parameters, buffers, gradients, optimiser state and random number
generators bit for bit, so the run trains exactly as it would without the
hook. ``Z[l, i -> j] = 1 - L_j(after) / L_j(before)`` is averaged over the
run and written at the end as an affinity file (method ``tag``) that
``tools/build_tree.py`` reads unchanged.

Per split, not one value for the encoder: a tree shares the bottom blocks
``0..l`` among a group of tasks, so the question at split l is how a step of
task i on exactly those blocks moves task j; the deepest split (every block
stepped) is TAG's own whole-encoder measurement, which its selection uses.
``splits='encoder'`` measures only that one and writes it for every block
(L times cheaper).

The lookahead forwards run in full precision outside the optim wrapper's
context (no autocast under AMP) and through the unwrapped model (no DDP
synchronisation; each rank measures its own batch, averaged at the end).
"""
import copy
import os.path as osp
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from branched_mtl.registry import HOOKS

__all__ = ['TagHook', 'lookahead_losses', 'task_losses']

TAG_DIRNAME = 'tag'
_SPLIT_MODES = ('blocks', 'encoder')


def task_losses(losses: Dict[str, torch.Tensor],
                tasks: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Each task's loss: the sum of its weighted loss terms.

    Args:
        losses: The model's loss dict (``<task>.<name>``, as
            :class:`MultiTaskHead` names them).
        tasks: The task names.

    Returns:
        {task: scalar tensor} for the tasks the batch had labels for.
    """
    out = {}
    for task in tasks:
        terms = [v for k, v in losses.items()
                 if k.startswith(task + '.') and 'loss' in k[len(task) + 1:]]
        if terms:
            out[task] = sum(t.sum() for t in terms)
    return out


class _Snapshot:
    """Everything a lookahead step changes, kept to be put back exactly."""

    def __init__(self, model: nn.Module, params: List[nn.Parameter],
                 optimizer: torch.optim.Optimizer) -> None:
        self.params = [p.detach().clone() for p in params]
        self.buffers = [(b, b.detach().clone()) for b in model.buffers()]
        self.grads = [(p, p.grad) for g in optimizer.param_groups
                      for p in g['params']]
        # the optimiser state of the stepped parameters (only theirs
        # changes), with a note of those that had none yet
        self.state = {p: copy.deepcopy(optimizer.state[p])
                      for p in params if p in optimizer.state}
        self.groups = [{k: copy.deepcopy(v) for k, v in g.items()
                        if k != 'params'} for g in optimizer.param_groups]
        # mmengine's parameter schedulers count optimiser steps on it
        self.step_count = optimizer.__dict__.get('_global_step')
        # MultiTaskHead counts batches without a label per task (to stop a
        # run whose data never labels one): the lookahead's forwards must
        # not count
        self.counters = [(m, copy.deepcopy(m._unlabelled))
                         for m in model.modules()
                         if isinstance(getattr(m, '_unlabelled', None),
                                       dict)]
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = (torch.cuda.get_rng_state_all()
                         if torch.cuda.is_available() else None)

    def restore_rng(self) -> None:
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)

    @torch.no_grad()
    def restore_params(self, params: List[nn.Parameter],
                       optimizer: torch.optim.Optimizer) -> None:
        for p, saved in zip(params, self.params):
            p.copy_(saved)
        for p in params:
            if p in self.state:
                optimizer.state[p] = copy.deepcopy(self.state[p])
            else:
                optimizer.state.pop(p, None)
        for g, saved in zip(optimizer.param_groups, self.groups):
            g.update(copy.deepcopy(saved))

    @torch.no_grad()
    def restore_all(self, params: List[nn.Parameter],
                    optimizer: torch.optim.Optimizer) -> None:
        self.restore_params(params, optimizer)
        if self.step_count is not None:
            optimizer._global_step = self.step_count
        for b, saved in self.buffers:
            b.copy_(saved)
        for p, grad in self.grads:
            p.grad = grad
        for m, counts in self.counters:
            m._unlabelled = copy.deepcopy(counts)
        self.restore_rng()


def lookahead_losses(loss_fn: Callable[[], Dict[str, torch.Tensor]],
                     tasks: Sequence[str],
                     split_params: Sequence[List[nn.Parameter]],
                     optimizer: torch.optim.Optimizer,
                     model: nn.Module) -> Tuple[np.ndarray, np.ndarray]:
    """Every task's loss before and after a lookahead step of each task at
    each split; the model and optimiser are left as they were, bit for bit.

    The random number generators are reset before each forward, so the
    forwards before and after a step see the same dropout masks and differ
    only by the step.

    Args:
        loss_fn: One forward on the fixed batch; returns {task: loss} for
            the tasks labelled in it.
        tasks: N task names.
        split_params: Per split l, the parameters a step at l updates (the
            encoder's blocks ``0..l``); each list contains the one before.
        optimizer: The run's optimiser; its own ``step`` makes the update.
        model: The module whose buffers (batch norm statistics) the
            forwards change.

    Returns:
        ``(before, after)``: (N,) losses before (NaN for a task without a
        label in the batch) and (L, N, N) losses after, ``[l, i, j]`` =
        L_j after task i's step at split l (NaN where i or j is missing).
    """
    n, num_splits = len(tasks), len(split_params)
    shared = list(split_params[-1])
    pos = {id(p): k for k, p in enumerate(shared)}
    before = np.full(n, np.nan)
    after = np.full((num_splits, n, n), np.nan)
    snap = _Snapshot(model, shared, optimizer)
    try:
        snap.restore_rng()
        losses = loss_fn()
        for j, t in enumerate(tasks):
            if t in losses:
                before[j] = float(losses[t].detach())
        grads = {}
        present = [t for t in tasks if t in losses]
        for k, t in enumerate(present):
            # a parameter task t does not reach has a zero gradient (the
            # optimiser still applies its momentum and weight decay there)
            grads[t] = torch.autograd.grad(
                losses[t], shared, retain_graph=k < len(present) - 1,
                allow_unused=True, materialize_grads=True)
        del losses
        others = [p for g in optimizer.param_groups for p in g['params']
                  if id(p) not in pos]
        for l, params in enumerate(split_params):
            for i, t in enumerate(tasks):
                if t not in grads:
                    continue
                # task i's gradient on blocks 0..l alone: every other
                # parameter has no gradient, which torch's optimisers skip
                for p in others:
                    p.grad = None
                stepped = {id(p) for p in params}
                for p in shared:
                    p.grad = (grads[t][pos[id(p)]].clone()
                              if id(p) in stepped else None)
                optimizer.step()
                snap.restore_rng()
                with torch.no_grad():
                    out = loss_fn()
                for j, u in enumerate(tasks):
                    if u in out:
                        after[l, i, j] = float(out[u])
                snap.restore_params(shared, optimizer)
    finally:
        snap.restore_all(shared, optimizer)
    return before, after


@HOOKS.register_module()
class TagHook(Hook):
    """Measure TAG's lookahead affinity during a multi-task training run.

    The model must be a :class:`BranchedMultiTaskModel` whose encoder is
    shared by all tasks at every block (the all-shared network); its optim
    wrapper a single one. Files in ``<work_dir>/tag/`` at the end of
    training (rank 0, atomically): ``affinity.json`` (method ``tag``; its
    ``meta`` holds the directional Z, the number of measurements and the
    seconds the hook took).

    Args:
        interval: Measure every this many iterations (TAG: 10), from
            iteration ``begin`` on.
        begin: The first iteration measured.
        splits: ``'blocks'`` (one affinity per split l, stepping blocks
            ``0..l``) or ``'encoder'`` (the whole encoder only, written
            for every block).
        out_file: Where to write, relative to the work dir.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 10,
                 begin: int = 0,
                 splits: str = 'blocks',
                 out_file: str = osp.join(TAG_DIRNAME, 'affinity.json')
                 ) -> None:
        for name, value, low in (('interval', interval, 1),
                                 ('begin', begin, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < low:
                raise ValueError(f'TagHook: {name} must be an int >= {low},'
                                 f' got {value!r}')
        if splits not in _SPLIT_MODES:
            raise ValueError(f'TagHook: splits must be one of {_SPLIT_MODES}'
                             f', got {splits!r}')
        self.interval = interval
        self.begin = begin
        self.splits = splits
        self.out_file = out_file
        self.z_sum: Optional[np.ndarray] = None
        self.counts: Optional[np.ndarray] = None
        self.seconds = 0.0
        self.measurements = 0

    # ------------------------------------------------------------ setup
    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _encoder(self, model: nn.Module):
        encoder = getattr(model, 'encoder', None)
        if encoder is None or not hasattr(encoder, 'branches'):
            raise TypeError('TagHook needs a BranchedMultiTaskModel (an '
                            f'encoder with branches), got '
                            f'{type(model).__name__}')
        split = [b for b, part in enumerate(encoder.branches)
                 if len(part) > 1]
        if split:
            raise ValueError(
                'TagHook measures the all-shared network: block '
                f'{encoder.block_names[split[0]]!r} of this model is split '
                f'into {encoder.branches[split[0]]}; train with '
                'model.encoder.branches=None')
        return encoder

    def _split_params(self, encoder) -> List[List[nn.Parameter]]:
        """Per split l the trainable parameters of blocks 0..l."""
        out, acc = [], []
        for b in range(encoder.num_blocks):
            acc = acc + [p for p in encoder.nodes[b].parameters()
                         if p.requires_grad]
            out.append(list(acc))
        if not out[-1]:
            raise ValueError('TagHook: the encoder has no trainable '
                             'parameters to step (all blocks frozen?)')
        if self.splits == 'encoder':
            out = out[-1:]
        return out

    def _layers(self, encoder) -> List[str]:
        return list(encoder.block_names)

    def before_train(self, runner) -> None:
        encoder = self._encoder(self._model(runner))
        if isinstance(runner.optim_wrapper, OptimWrapperDict):
            raise ValueError('TagHook needs one optim wrapper for the whole '
                             'model, got an OptimWrapperDict')
        if self.z_sum is None:  # else restored from a checkpoint
            n = len(encoder.tasks)
            num = encoder.num_blocks if self.splits == 'blocks' else 1
            self.z_sum = np.zeros((num, n, n))
            self.counts = np.zeros((num, n, n), dtype=np.int64)

    # ------------------------------------------------------------ measure
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        it = runner.iter
        if it < self.begin or (it - self.begin) % self.interval:
            return
        start = time.perf_counter()
        model = self._model(runner)
        encoder = self._encoder(model)
        tasks = list(encoder.tasks)
        # a copy: preprocessors may change samples in place (padding), and
        # the run's own step must see the batch as the loader gave it
        data = model.data_preprocessor(copy.deepcopy(data_batch), True)

        def loss_fn() -> Dict[str, torch.Tensor]:
            return task_losses(model(**data, mode='loss'), tasks)

        before, after = lookahead_losses(
            loss_fn, tasks, self._split_params(encoder),
            runner.optim_wrapper.optimizer, model)
        with np.errstate(invalid='ignore', divide='ignore'):
            z = 1.0 - after / before[None, None, :]
        ok = np.isfinite(z)
        self.z_sum += np.where(ok, z, 0.0)
        self.counts += ok
        self.measurements += 1
        self.seconds += time.perf_counter() - start

    # ------------------------------------------------------------ resume
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.z_sum is not None:
            checkpoint['tag_lookahead'] = dict(
                z_sum=self.z_sum.tolist(), counts=self.counts.tolist(),
                seconds=self.seconds, measurements=self.measurements)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('tag_lookahead')
        if saved is not None:
            self.z_sum = np.asarray(saved['z_sum'], dtype=np.float64)
            self.counts = np.asarray(saved['counts'], dtype=np.int64)
            self.seconds = float(saved['seconds'])
            self.measurements = int(saved['measurements'])

    # ------------------------------------------------------------ write
    def after_train(self, runner) -> None:
        from branched_mtl.affinity.tag import save_tag_affinity
        model = self._model(runner)
        encoder = self._encoder(model)
        rank, world_size = get_dist_info()
        z_sum, counts = self.z_sum, self.counts
        if world_size > 1:
            # each rank measured its own batches: the mean over all of them
            both = torch.from_numpy(np.stack([z_sum, counts.astype(float)]))
            all_reduce(both, op='sum')
            z_sum, counts = both[0].numpy(), both[1].numpy().astype(np.int64)
        if rank != 0:
            return
        z = z_sum / np.maximum(counts, 1)
        layers = self._layers(encoder)
        if self.splits == 'encoder':
            z = np.repeat(z, len(layers), axis=0)
            counts = np.repeat(counts, len(layers), axis=0)
        optimizer = runner.optim_wrapper.optimizer
        meta = dict(
            source='TagHook', work_dir=runner.work_dir,
            interval=self.interval, begin=self.begin, splits=self.splits,
            measurements=self.measurements, iters=runner.iter,
            world_size=world_size, optimizer=type(optimizer).__name__,
            optimizer_defaults={k: v for k, v in optimizer.defaults.items()
                                if isinstance(v, (int, float, str, bool))},
            seconds=self.seconds,
            split_rule='split l steps the encoder blocks 0..l')
        path = osp.join(runner.work_dir, self.out_file)
        save_tag_affinity(path, list(encoder.tasks), layers, z, counts,
                          meta)
        print_log(f'TagHook: lookahead affinity of {self.measurements} '
                  f'measurements ({self.seconds:.1f} s) written to {path}',
                  logger='current')
