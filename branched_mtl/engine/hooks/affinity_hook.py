"""AffinityHook: probe a trained run on fixed held-out samples (Step 3 input).

After training, the run's model is evaluated on the same K held-out samples
in every run of a sweep; per-sample losses (tournament affinity) and the
features of every block (RSA affinity) go to ``<work_dir>/affinity_probe/``,
the format that :mod:`branched_mtl.affinity.collect` reads.
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_gather_object, barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from branched_mtl.registry import DATASETS, HOOKS, build_stock
from branched_mtl.utils.io import dump_json_atomic, open_atomic

PROBE_DIRNAME = 'affinity_probe'
_SPLIT_NAMES = ('train', 'val', 'test')


def _save_npy_atomic(arr: np.ndarray, path: str) -> None:
    """``np.save`` through a temp file and :func:`os.replace`."""
    with open_atomic(path, 'wb') as f:
        np.save(f, arr)


def _check_recombination(rec: Optional[dict]) -> Optional[dict]:
    if rec is None:
        return None
    if not isinstance(rec, dict) or set(rec) != {'target', 'source',
                                                 'split'}:
        raise ValueError('AffinityHook: recombination must be None or '
                         f'dict(target, source, split), got {rec!r}')
    rec = dict(rec)
    if rec['target'] is not None and not isinstance(rec['target'], str):
        raise ValueError('AffinityHook: recombination target must be a task '
                         f'name or None (every task of the run), got '
                         f'{rec["target"]!r}')
    if not isinstance(rec['source'], str):
        raise ValueError('AffinityHook: recombination source must be a task '
                         f'name, got {rec["source"]!r}')
    split = rec['split']
    if not isinstance(split, int) or isinstance(split, bool) or split < 1:
        raise ValueError('AffinityHook: recombination split must be the '
                         f'number of frozen blocks (>= 1), got {split!r}')
    return rec


class ProbeSamples:
    """The fixed held-out samples a hook evaluates: ``self.dataset`` (a
    loader's name or a dataset config) and ``self.num_samples`` drawn with
    ``self.seed``, or ``self.sample_indices``; the hook's name in errors
    is its class name."""

    def _build_dataset(self, runner):
        if isinstance(self.dataset, str):
            loader = runner.cfg.get(f'{self.dataset}_dataloader')
            if not loader or 'dataset' not in loader:
                raise ValueError(f'{type(self).__name__}: the config has '
                                 f'no {self.dataset}_dataloader.dataset')
            cfg = copy.deepcopy(loader['dataset'])
        else:
            cfg = copy.deepcopy(self.dataset)
        return build_stock(cfg, DATASETS)

    def select_indices(self, dataset_len: int) -> List[int]:
        """The K sample indices probed in a dataset of ``dataset_len``.

        Args:
            dataset_len: Length of the held-out set.

        Returns:
            Sorted sample indices.
        """
        if self.sample_indices is not None:
            bad = [i for i in self.sample_indices if i >= dataset_len]
            if bad:
                raise ValueError(f'{type(self).__name__}: sample_indices '
                                 f'{bad[:5]} out of range for a dataset of '
                                 f'{dataset_len}')
            return list(self.sample_indices)
        if self.num_samples > dataset_len:
            raise ValueError(f'{type(self).__name__}: num_samples='
                             f'{self.num_samples} > dataset length '
                             f'{dataset_len}')
        rng = np.random.default_rng(self.seed)
        return sorted(
            int(i)
            for i in rng.choice(dataset_len, self.num_samples, replace=False))


@HOOKS.register_module()
class AffinityHook(ProbeSamples, Hook):
    """Write per-sample losses and block features of fixed held-out samples.

    At ``after_train`` the model runs in eval mode without gradients (train
    mode is restored afterwards) on K samples of a held-out set, the same K
    in every run that uses the same arguments. Under DDP each rank probes a
    contiguous slice of the K samples without any sampler; the slices are
    gathered and rank 0 writes, so the files equal a 1-process run's.

    Files in ``<work_dir>/affinity_probe/`` (each written atomically,
    ``meta.json`` last):

    * ``meta.json``: ``tasks``, ``blocks`` (block names), ``sample_indices``,
      ``recombination``;
    * ``losses.npy``: float32 (tasks, K), the sum of each task's loss terms
      on each sample alone;
    * ``features/<task>/<split>.npy``: float16 (K, ...) block outputs.

    Args:
        dataset: ``'val'``, ``'test'`` or ``'train'`` (that dataloader's
            dataset in the run's config) or a dataset config.
        num_samples: K, drawn without replacement with ``seed``.
        sample_indices: Explicit sample indices instead of ``num_samples``.
        seed: Seed of the draw (a private generator: no global RNG is used).
        batch_size: Samples per forward pass.
        recombination: None for a single-task run, or ``dict(target, source,
            split)`` of a recombined run (``target=None``: every task of the
            run is a target, as in the shared-bottom sweep).
        feature_dtype: dtype of the saved features.
        save_features: Write the block features (RSA needs them; the
            tournament reads only the losses, so a recombined run of the
            sweep skips them).
    """

    priority = 'LOW'

    def __init__(self,
                 dataset: Union[str, dict] = 'val',
                 num_samples: Optional[int] = 64,
                 sample_indices: Optional[Sequence[int]] = None,
                 seed: int = 0,
                 batch_size: int = 16,
                 recombination: Optional[dict] = None,
                 feature_dtype: str = 'float16',
                 save_features: bool = True) -> None:
        if isinstance(dataset, str) and dataset not in _SPLIT_NAMES:
            raise ValueError(f'AffinityHook: dataset must be one of '
                             f'{_SPLIT_NAMES} or a dataset config, got '
                             f'{dataset!r}')
        if sample_indices is not None:
            sample_indices = [int(i) for i in sample_indices]
            if not sample_indices or min(sample_indices) < 0:
                raise ValueError('AffinityHook: sample_indices must be a '
                                 'non-empty list of indices >= 0')
            if len(set(sample_indices)) != len(sample_indices):
                raise ValueError('AffinityHook: sample_indices has '
                                 'duplicates')
        elif not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError('AffinityHook: give num_samples >= 1 or '
                             'sample_indices, got num_samples='
                             f'{num_samples!r}')
        if batch_size < 1:
            raise ValueError(f'AffinityHook: batch_size must be >= 1, got '
                             f'{batch_size}')
        self.dataset = dataset
        self.num_samples = num_samples
        self.sample_indices = sample_indices
        self.seed = seed
        self.batch_size = batch_size
        self.recombination = _check_recombination(recombination)
        self.feature_dtype = np.dtype(feature_dtype)
        self.save_features = save_features

    @torch.no_grad()
    def probe(self, model: torch.nn.Module, dataset,
              indices: Sequence[int]) -> Dict[str, object]:
        """Losses and block features of ``model`` on ``dataset[indices]``.

        Args:
            model: An unwrapped ``BranchedMultiTaskModel`` in eval mode.
            dataset: The held-out dataset.
            indices: Sample indices to probe.

        Returns:
            ``losses``: float32 (tasks, n); ``features``: per block, per
            task, (n, ...) arrays.
        """
        encoder, head = model.encoder, model.head
        tasks = list(model.tasks)
        losses = np.zeros((len(tasks), len(indices)), np.float32)
        feats: List[Dict[str, List[np.ndarray]]] = [
            {t: [] for t in tasks} for _ in encoder.block_names]
        for start in range(0, len(indices), self.batch_size):
            chunk = list(indices[start:start + self.batch_size])
            data = model.data_preprocessor(
                pseudo_collate([dataset[i] for i in chunk]), False)
            inputs, samples = data['inputs'], data['data_samples']
            per_block = encoder.block_features(inputs)
            for b, outs in enumerate(per_block if self.save_features
                                     else []):
                for t in tasks:
                    feats[b][t].append(outs[t].float().cpu().numpy().astype(
                        self.feature_dtype))
            task_feats = {
                t: tuple(per_block[b][t] for b in encoder.out_blocks)
                for t in tasks
            }
            for k, sample in enumerate(samples):
                # the head's own loss on this sample alone: exactly the
                # training loss (weights, ignore index) of a batch of one
                one = {t: tuple(f[k:k + 1] for f in fs)
                       for t, fs in task_feats.items()}
                terms = head.loss(one, [sample])
                for row, t in enumerate(tasks):
                    values = [v for name, v in terms.items()
                              if name.startswith(f'{t}.')
                              and 'loss' in name[len(t) + 1:]]
                    if not values:
                        raise ValueError(
                            f'AffinityHook: sample {chunk[k]} of the probe '
                            f'set has no ground truth for task {t!r}')
                    losses[row, start + k] = float(
                        sum(v.float().sum() for v in values))
        return dict(
            losses=losses,
            features=[{t: np.concatenate(v) for t, v in blk.items() if v}
                      for blk in feats])

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        tasks = list(model.tasks)
        rec = self.recombination
        if rec is not None and rec['target'] is not None \
                and rec['target'] not in tasks:
            raise ValueError(f'AffinityHook: recombination target '
                             f'{rec["target"]!r} is not a task of the run '
                             f'{tasks}')
        dataset = self._build_dataset(runner)
        indices = self.select_indices(len(dataset))
        rank, world_size = get_dist_info()
        # contiguous, disjoint slices: concatenating them in rank order
        # gives back the K samples in order
        mine = np.array_split(np.arange(len(indices)), world_size)[rank]
        training = model.training
        model.eval()
        try:
            part = self.probe(model, dataset, [indices[p] for p in mine])
        finally:
            model.train(training)
        parts = all_gather_object(part) if world_size > 1 else [part]
        if rank == 0:
            self._write(runner.work_dir, model, tasks, indices, parts)
        if world_size > 1:
            barrier()

    def _write(self, work_dir: str, model, tasks: List[str],
               indices: List[int], parts: List[dict]) -> None:
        out = osp.join(work_dir, PROBE_DIRNAME)
        os.makedirs(out, exist_ok=True)
        meta_path = osp.join(out, 'meta.json')
        # a stale meta.json would vouch for files being rewritten
        if osp.exists(meta_path):
            os.remove(meta_path)
        losses = np.concatenate([p['losses'] for p in parts], axis=1)
        splits = list(model.encoder.block_names)
        for b, split in enumerate(splits if self.save_features else []):
            for t in tasks:
                arr = np.concatenate([p['features'][b][t] for p in parts])
                _save_npy_atomic(
                    arr, osp.join(out, 'features', t, f'{split}.npy'))
        _save_npy_atomic(losses.astype(np.float32),
                         osp.join(out, 'losses.npy'))
        dump_json_atomic(
            dict(tasks=tasks, blocks=splits, sample_indices=list(indices),
                 recombination=self.recombination), meta_path)
        print_log(
            f'AffinityHook: probed {len(indices)} samples, tasks {tasks}, '
            f'{len(splits)} splits -> {out}', logger='current')
