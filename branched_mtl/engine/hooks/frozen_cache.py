"""FrozenFeatureCacheHook: compute a frozen encoder bottom once per sample.

The bottom ``frozen_blocks`` blocks of a recombined network (Step 2 of the
method) are frozen and in eval mode: for a given training sample their
output never changes, yet a run of the single-task schedule computes it
again in every epoch. This hook keeps the outputs the rest of the network
reads (the last frozen block's, and those of frozen blocks the heads read)
per training sample, and serves a batch from them once every sample of it
has been seen:

* keyed by the frozen bottom's own weights (a digest of their bytes), the
  training set's config and the sample's ``sample_idx``;
* in memory while the whole table fits ``memory_budget`` bytes (shared by
  the runs of one process, e.g. the jobs of one sweep worker: the jobs of
  one (source, split) reuse it, oldest tables dropped first), else in a
  file under ``cache_dir`` (removed when training ends), else not at all
  (the bottom is computed as before);
* exact: a batch with any sample not in the table runs the bottom as
  before (and fills the table), and a batch is served only at the batch
  size its rows were computed at (on the CPU a sample's output of a
  convolution depends on the batch size, not on the other samples); every
  served sample's input is checked against a fingerprint taken when it was
  stored, so inputs that change between epochs (random augmentation, batch
  augments of the data preprocessor) switch the cache off at the first
  change instead of serving stale features.

What it assumes: the frozen blocks are deterministic in eval mode (batch
norm uses its running statistics, no dropout); the pipeline gives a sample
the same input every epoch (checked, see above).
"""
import hashlib
import os
import os.path as osp
import weakref
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import Tensor

from branched_mtl.datasets.utils import batch_sample_ids
from branched_mtl.registry import HOOKS

__all__ = ['FrozenFeatureCacheHook', 'FeatureTable']

DEFAULT_BUDGET = 2 * 1024**3
# transform names that draw at random (mmcv / mmseg / mmpretrain): the
# cache is not even started for them (the fingerprints would stop it)
_RANDOM_WORDS = ('Random', 'Rand', 'ColorJitter', 'PhotoMetric', 'Albu',
                 'AutoAugment', 'GaussianBlur', 'Mixup', 'CutMix')
# tables kept in this process for later runs (a worker's next jobs)
_TABLES: 'OrderedDict[tuple, FeatureTable]' = OrderedDict()


def _fingerprint(x: Tensor) -> Tensor:
    """Two float64 numbers per sample: its sum and its dot product with a
    fixed pseudo-random vector (a changed input moves them)."""
    flat = x.detach().reshape(x.shape[0], -1).double()
    g = torch.Generator().manual_seed(flat.shape[1])
    w = torch.rand(flat.shape[1], generator=g, dtype=torch.float64)
    return torch.stack([flat.sum(1), flat @ w.to(flat.device)], 1).cpu()


class FeatureTable:
    """Rows of frozen-block outputs, one per training sample.

    Args:
        shapes: Per stored output, its shape for one sample.
        dtype: Their dtype.
        capacity: Number of rows (distinct training samples).
        batch_size: The batch size the rows are computed at.
        folder: A folder for a file-backed table (None: in memory).
    """

    def __init__(self, shapes: Sequence[Tuple[int, ...]], dtype: torch.dtype,
                 capacity: int, batch_size: int,
                 folder: Optional[str] = None) -> None:
        self.shapes = [tuple(s) for s in shapes]
        self.capacity = int(capacity)
        self.batch_size = int(batch_size)
        self.rows: Dict[int, int] = {}
        self.filled = torch.zeros(capacity, dtype=torch.bool)
        self.prints = torch.zeros(capacity, 2, dtype=torch.float64)
        self.files: List[str] = []
        self.tensors: List[Tensor] = []
        for i, shape in enumerate(self.shapes):
            if folder is None:
                self.tensors.append(torch.empty((capacity, ) + shape,
                                                dtype=dtype))
                continue
            os.makedirs(folder, exist_ok=True)
            path = osp.join(folder, f'frozen_{os.getpid()}_{id(self)}_{i}'
                            '.npy')
            array = np.lib.format.open_memmap(
                path, mode='w+', dtype=torch.empty(0, dtype=dtype).numpy()
                .dtype, shape=(capacity, ) + shape)
            self.files.append(path)
            self.tensors.append(torch.from_numpy(array))
        if self.files:
            # the files go with the table (end of training, or a crash of
            # the process: weakref finalizers run at exit)
            weakref.finalize(self, _remove, list(self.files))

    @staticmethod
    def nbytes(shapes: Sequence[Tuple[int, ...]], dtype: torch.dtype,
               capacity: int) -> int:
        item = torch.empty(0, dtype=dtype).element_size()
        return capacity * (16 + sum(item * int(np.prod(s)) for s in shapes))

    def lookup(self, ids: Sequence[int], prints: Tensor
               ) -> Tuple[Optional[Tensor], bool]:
        """Rows of ``ids`` when all are stored, and whether a stored input
        changed.

        Returns:
            ``(row index or None, changed)``.
        """
        rows = [self.rows.get(i) for i in ids]
        known = [k for k, r in enumerate(rows) if r is not None]
        if known:
            index = torch.as_tensor([rows[k] for k in known])
            have = self.filled[index]
            old = self.prints[index[have]]
            new = prints[torch.as_tensor(known)[have]]
            if not torch.allclose(old, new, rtol=1e-9, atol=1e-6):
                return None, True
        if len(known) < len(rows) or not bool(
                self.filled[torch.as_tensor(rows)].all()):
            return None, False
        return torch.as_tensor(rows), False

    def store(self, ids: Sequence[int], prints: Tensor,
              outputs: Sequence[Tensor]) -> bool:
        """Store one batch's outputs; False when the table is full."""
        rows = []
        for i in ids:
            if i not in self.rows:
                if len(self.rows) >= self.capacity:
                    return False
                self.rows[i] = len(self.rows)
            rows.append(self.rows[i])
        index = torch.as_tensor(rows)
        for table, out in zip(self.tensors, outputs):
            table[index] = out.detach().to('cpu', table.dtype)
        self.prints[index] = prints
        self.filled[index] = True
        return True

    def gather(self, index: Tensor, device: torch.device,
               formats: Sequence[torch.memory_format]) -> List[Tensor]:
        return [t[index].to(device).contiguous(memory_format=f)
                for t, f in zip(self.tensors, formats)]


def _remove(paths: List[str]) -> None:
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def _pipeline_types(cfg) -> List[str]:
    """Type names of every transform in a dataset config (nested too)."""
    found = []
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'pipeline' and isinstance(value, (list, tuple)):
                found += [str(t.get('type', '')) for t in value
                          if isinstance(t, dict)]
            else:
                found += _pipeline_types(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found += _pipeline_types(value)
    return found


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Tensor):
            h.update(part.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


@HOOKS.register_module()
class FrozenFeatureCacheHook(Hook):
    """Serve the frozen bottom's outputs from a per-sample table.

    Needs a :class:`BranchedEncoder` with ``frozen_blocks > 0`` and training
    samples that carry ``sample_idx`` (mmengine data sets set it); does
    nothing otherwise (one log line says why).

    Args:
        memory_budget: Bytes the tables of this process may hold in memory
            (default 2 GiB); 0 keeps none in memory.
        cache_dir: Folder for a table larger than what is left of the
            budget (default: ``<work_dir>/frozen_cache``); None or ``''``:
            such a table is not kept and the bottom is computed as before.
    """

    priority = 'HIGH'  # after RecombinationHook (VERY_HIGH) loads weights

    def __init__(self, memory_budget: int = DEFAULT_BUDGET,
                 cache_dir: Optional[str] = 'auto') -> None:
        if isinstance(memory_budget, bool) or not isinstance(
                memory_budget, int) or memory_budget < 0:
            raise ValueError(f'FrozenFeatureCacheHook: memory_budget must be '
                             f'an int >= 0 (bytes), got {memory_budget!r}')
        self.memory_budget = memory_budget
        self.cache_dir = cache_dir
        self.encoder = None
        self.table: Optional[FeatureTable] = None
        self.key: Optional[tuple] = None
        self.pending: Optional[List[int]] = None
        self.capacity = 0
        self.folder: Optional[str] = None
        self.off_reason: Optional[str] = None
        self.served = 0
        self.computed = 0

    # ------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        encoder = getattr(model, 'encoder', None)
        reason = self._why_not(runner, encoder)
        if reason is not None:
            print_log(f'FrozenFeatureCacheHook: off ({reason})',
                      logger='current')
            return
        if getattr(encoder, 'frozen_features', None) is not None:
            return  # another cache hook serves this encoder already
        self.encoder = encoder
        self.capacity = len(runner.train_dataloader.dataset)
        folder = self.cache_dir
        if folder == 'auto':
            folder = osp.join(runner.work_dir, 'frozen_cache')
        self.folder = folder or None
        data = runner.cfg.get('train_dataloader', {}).get('dataset')
        b = encoder.frozen_blocks
        bottom = [t for blk in encoder.nodes[:b] for node in blk
                  for t in node.state_dict().values()]
        self.key = (_digest(encoder.block_names[:b], *bottom),
                    _digest(data) if data is not None else id(
                        runner.train_dataloader.dataset), self.capacity)
        encoder.frozen_features = self
        print_log(
            f'FrozenFeatureCacheHook: the outputs of the {b} frozen '
            f'block(s) are kept per training sample (budget '
            f'{self.memory_budget / 2**20:.0f} MiB in memory, then '
            f'{self.folder or "none on disk"})', logger='current')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self.encoder is None or self.off_reason is not None:
            return
        samples = (data_batch or {}).get('data_samples') if isinstance(
            data_batch, dict) else None
        self.pending = batch_sample_ids(samples)

    def after_train(self, runner) -> None:
        if self.encoder is None:
            return
        self.encoder.frozen_features = None
        self.encoder = None
        print_log(f'FrozenFeatureCacheHook: {self.served} batch(es) served '
                  f'from the table, {self.computed} computed'
                  + (f'; off since: {self.off_reason}' if self.off_reason
                     else ''), logger='current')
        if self.table is not None and self.table.files:
            _remove(self.table.files)  # a file-backed table is per run
        self.table = None

    def __deepcopy__(self, memo):
        # a copied model (EMA and the like) computes its own bottom
        return None

    # ------------------------------------------------------ the encoder
    def __call__(self, x: Tensor, compute: Callable[[Tensor], list]
                 ) -> list:
        """The frozen blocks' outputs for batch ``x`` (what
        ``BranchedEncoder.forward_bottom`` returns: per frozen block, each
        group's output; None where no later block reads it)."""
        ids, self.pending = self.pending, None
        if self.off_reason is not None or ids is None or \
                len(ids) != x.shape[0]:
            return compute(x)
        prints = _fingerprint(x)
        if self.table is not None and x.shape[0] == self.table.batch_size:
            index, changed = self.table.lookup(ids, prints)
            if changed:
                self._off('a sample\'s input changed between epochs (random '
                          'augmentation?); the bottom is computed as before')
                return compute(x)
            if index is not None:
                self.served += 1
                return self._unflatten(self.table.gather(
                    index, x.device, self.formats))
        outputs = compute(x)
        self.computed += 1
        kept = [outputs[b][g] for b, g in self._kept()]
        if self.table is None:
            self._open(kept, x.shape[0])
        if self.table is not None and x.shape[0] == self.table.batch_size \
                and not self.table.store(ids, prints, kept):
            self._off(f'more distinct sample_idx than the {self.capacity} '
                      'training samples')
        return outputs

    def _kept(self) -> List[Tuple[int, int]]:
        """(block, group) outputs read above the bottom: the last frozen
        block's (input of the next) and frozen blocks the heads read."""
        enc = self.encoder
        last = enc.frozen_blocks - 1
        blocks = sorted({last} | {b for b in enc.out_blocks if b <= last})
        return [(b, g) for b in blocks for g in range(len(enc.nodes[b]))]

    def _unflatten(self, kept: List[Tensor]) -> list:
        out: list = [[None] * len(self.encoder.nodes[b])
                     for b in range(self.encoder.frozen_blocks)]
        for (b, g), t in zip(self._kept(), kept):
            out[b][g] = t
        return out

    def _open(self, kept: List[Tensor], batch_size: int) -> None:
        shapes = [tuple(t.shape[1:]) for t in kept]
        dtype = kept[0].dtype
        self.formats = [torch.channels_last if t.dim() == 4 and
                        not t.is_contiguous() and t.is_contiguous(
                            memory_format=torch.channels_last)
                        else torch.contiguous_format for t in kept]
        key = self.key + (tuple(shapes), dtype, batch_size)
        if key in _TABLES:  # an earlier run of this process filled it
            _TABLES.move_to_end(key)
            self.table = _TABLES[key]
            return
        need = FeatureTable.nbytes(shapes, dtype, self.capacity)
        held = sum(FeatureTable.nbytes(t.shapes, t.tensors[0].dtype,
                                       t.capacity) for t in _TABLES.values())
        while _TABLES and held + need > self.memory_budget:
            old = _TABLES.popitem(last=False)[1]  # the oldest goes first
            held -= FeatureTable.nbytes(old.shapes, old.tensors[0].dtype,
                                        old.capacity)
        if held + need <= self.memory_budget:
            self.table = FeatureTable(shapes, dtype, self.capacity,
                                      batch_size)
            _TABLES[key] = self.table
            where = 'in memory'
        elif self.folder is not None:
            self.table = FeatureTable(shapes, dtype, self.capacity,
                                      batch_size, folder=self.folder)
            where = f'in {self.folder}'
        else:
            self._off(f'the table needs {need / 2**20:.0f} MiB, over the '
                      f'budget of {self.memory_budget / 2**20:.0f} MiB, and '
                      'no cache_dir is given')
            return
        print_log(f'FrozenFeatureCacheHook: a table of {need / 2**20:.1f} '
                  f'MiB {where}', logger='current')

    def _off(self, reason: str) -> None:
        self.off_reason = reason
        if self.table is not None:
            for key, table in list(_TABLES.items()):
                if table is self.table:
                    del _TABLES[key]
            if self.table.files:
                _remove(self.table.files)
        self.table = None
        print_log(f'FrozenFeatureCacheHook: off ({reason})',
                  logger='current')

    @staticmethod
    def _why_not(runner, encoder) -> Optional[str]:
        if encoder is None or not hasattr(encoder, 'frozen_blocks'):
            return 'the model has no BranchedEncoder'
        if not encoder.frozen_blocks:
            return 'no frozen block'
        data = runner.cfg.get('train_dataloader', {}).get('dataset')
        random = [t for t in _pipeline_types(data)
                  if any(w in t for w in _RANDOM_WORDS)]
        if random:
            return (f'the training pipeline draws at random ({random[0]}); '
                    'the frozen features would differ every epoch')
        return None
