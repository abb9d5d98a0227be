"""ProbeEarlyStoppingHook: stop a run once its loss on held-out samples has
stopped falling (recombined runs of the sweep: deep splits train few
parameters and converge long before a fixed schedule ends)."""
import math
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from branched_mtl.registry import HOOKS
from branched_mtl.utils.io import dump_json_atomic
from .affinity_hook import _SPLIT_NAMES, ProbeSamples

RECORD_FILE = 'early_stop.json'


@HOOKS.register_module()
class ProbeEarlyStoppingHook(ProbeSamples, Hook):
    """Stop training when the probe loss has not improved for ``patience``
    checks.

    Every ``interval`` iterations the model's training loss (the sum of its
    loss terms, as in training, in eval mode and without gradients) is
    measured on K fixed held-out samples. Every rank measures all K, so the
    ranks agree on when to stop without communicating. What happened goes
    to ``<work_dir>/early_stop.json``: the checks, the best loss and the
    iteration the run stopped at (None when it ran its whole schedule).

    Args:
        interval: Iterations between checks.
        patience: Checks without improvement before training stops.
        min_delta: Relative improvement that counts (0.01: 1 %).
        dataset: ``'val'`` (the probe part of the training set in our
            configs), ``'train'`` or ``'test'`` loader's dataset, or a
            dataset config.
        num_samples: K.
        sample_indices: Explicit indices instead of ``num_samples``.
        seed: Seed of the K samples' draw.
        batch_size: Samples per forward pass.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 10,
                 patience: int = 3,
                 min_delta: float = 0.0,
                 dataset: Union[str, dict] = 'val',
                 num_samples: Optional[int] = 64,
                 sample_indices: Optional[Sequence[int]] = None,
                 seed: int = 1,
                 batch_size: int = 32) -> None:
        name = type(self).__name__
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'{name}: interval must be an integer >= 1, '
                             f'got {interval!r}')
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f'{name}: patience must be an integer >= 1, '
                             f'got {patience!r}')
        if not 0 <= min_delta < 1:
            raise ValueError(f'{name}: min_delta is a relative improvement '
                             f'in [0, 1), got {min_delta!r}')
        if isinstance(dataset, str) and dataset not in _SPLIT_NAMES:
            raise ValueError(f'{name}: dataset must be one of '
                             f'{_SPLIT_NAMES} or a dataset config, got '
                             f'{dataset!r}')
        if sample_indices is None and (not isinstance(num_samples, int)
                                       or num_samples < 1):
            raise ValueError(f'{name}: give num_samples >= 1 or '
                             f'sample_indices, got {num_samples!r}')
        self.interval = interval
        self.patience = patience
        self.min_delta = min_delta
        self.dataset = dataset
        self.num_samples = num_samples
        self.sample_indices = (None if sample_indices is None else
                               [int(i) for i in sample_indices])
        self.seed = seed
        self.batch_size = batch_size

    def before_train(self, runner) -> None:
        self._data = self._build_dataset(runner)
        self._indices = self.select_indices(len(self._data))
        self.best = math.inf
        self.bad_checks = 0
        self.checks: List[dict] = []
        self.stopped_at: Optional[int] = None

    @torch.no_grad()
    def probe_loss(self, model: torch.nn.Module) -> float:
        """Mean training loss of ``model`` on the K samples.

        Args:
            model: The unwrapped model.

        Returns:
            The loss, averaged over the samples.
        """
        training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            for start in range(0, len(self._indices), self.batch_size):
                chunk = self._indices[start:start + self.batch_size]
                data = model.data_preprocessor(
                    pseudo_collate([self._data[i] for i in chunk]), False)
                losses = model(**data, mode='loss')
                loss, _ = model.parse_losses(losses)
                total += float(loss) * len(chunk)
                count += len(chunk)
        finally:
            model.train(training)
        return total / count

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        step = runner.iter + 1
        if step % self.interval or step >= runner.max_iters:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        loss = self.probe_loss(model)
        improved = loss < self.best * (1 - self.min_delta)
        if improved:
            self.best, self.bad_checks = loss, 0
        else:
            self.bad_checks += 1
        self.checks.append(dict(iter=step, loss=loss))
        if self.bad_checks >= self.patience:
            self.stopped_at = step
            runner.train_loop.stop_training = True
            runner.logger.info(
                f'{type(self).__name__}: probe loss {loss:.4f} has not '
                f'improved on {self.best:.4f} for {self.patience} checks: '
                f'training stops at iteration {step} of {runner.max_iters}')

    def after_train(self, runner) -> None:
        if get_dist_info()[0] != 0:
            return
        dump_json_atomic(
            dict(interval=self.interval, patience=self.patience,
                 min_delta=self.min_delta, max_iters=runner.max_iters,
                 stopped_at=self.stopped_at,
                 best=None if math.isinf(self.best) else self.best,
                 checks=self.checks),
            osp.join(runner.work_dir, RECORD_FILE))
