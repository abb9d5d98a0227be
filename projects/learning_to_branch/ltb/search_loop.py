"""The architecture search as an mmengine training loop.

Each iteration trains the weights of the supergraph on a batch of the train
part (the config's optimiser; the logits are held still there), and after
the warm-up updates the architecture logits on a batch of held-out data
(the probe part of the training set) with their own optimiser. The
Gumbel-softmax temperature is annealed geometrically over the search.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from branched_mtl.registry import LOOPS, OPTIMIZERS


def temperature(step: int, max_iters: int, warmup_iters: int,
                tau: Tuple[float, float]) -> float:
    """tau[0] during the warm-up, then geometric to tau[1] at the end."""
    start, end = float(tau[0]), float(tau[1])
    if step < warmup_iters:
        return start
    span = max(max_iters - warmup_iters - 1, 1)
    frac = min((step - warmup_iters) / span, 1.0)
    return start * math.exp(frac * math.log(end / start))


@LOOPS.register_module()
class LTBSearchLoop(IterBasedTrainLoop):
    """Alternate weight steps (train part) and logit steps (held-out part).

    Args:
        runner: The runner.
        dataloader: The train part's loader (weights).
        max_iters: Search iterations.
        arch_dataloader: Loader config of the held-out data for the logits
            (an infinite sampler; never the test split).
        warmup_iters: Iterations before the logits start to learn.
        tau: Start and end temperature of the Gumbel-softmax.
        arch_optimizer: Optimiser config for the logits (``params`` is
            filled in).
        size_unit: Size of one copy of each block (parameters or FLOPs).
        size_scale: What the size penalty divides by (one encoder's size),
            so that ``size_weight`` does not depend on the model's scale.
        size_weight: Weight of the size penalty.
        size_budget: With a budget the penalty is a hinge on the expected
            size above it; without, the expected size itself.
        val_begin, val_interval: As in ``IterBasedTrainLoop``.
    """

    def __init__(self,
                 runner,
                 dataloader,
                 max_iters: int,
                 arch_dataloader: dict,
                 warmup_iters: int = 0,
                 tau: Sequence[float] = (5.0, 0.5),
                 arch_optimizer: Optional[dict] = None,
                 size_unit: Optional[Sequence[float]] = None,
                 size_scale: float = 1.0,
                 size_weight: float = 0.0,
                 size_budget: Optional[float] = None,
                 val_begin: int = 1,
                 val_interval: int = 1000) -> None:
        super().__init__(runner, dataloader, max_iters, val_begin,
                         val_interval)
        if not 0 <= warmup_iters <= max_iters:
            raise ValueError(f'warmup_iters must be in [0, max_iters='
                             f'{max_iters}], got {warmup_iters}')
        if len(tau) != 2 or not all(float(t) > 0 for t in tau):
            raise ValueError(f'tau must be (start, end) > 0, got {tau}')
        self.warmup_iters = int(warmup_iters)
        self.tau = (float(tau[0]), float(tau[1]))
        self.size_unit = list(size_unit) if size_unit is not None else None
        self.size_scale = float(size_scale)
        self.size_weight = float(size_weight)
        self.size_budget = size_budget
        self.arch_loader = runner.build_dataloader(
            arch_dataloader, seed=runner.seed)
        self._arch_iter = iter(self.arch_loader)
        model = self._model()
        encoder = model.encoder
        if not hasattr(encoder, 'arch_parameters'):
            raise TypeError('LTBSearchLoop needs an LTBSupergraph encoder, '
                            f'got {type(encoder).__name__}')
        cfg = dict(arch_optimizer or dict(type='Adam', lr=0.01))
        cfg['params'] = encoder.arch_parameters()
        self.arch_optimizer = OPTIMIZERS.build(cfg)

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def size_penalty(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(penalty, expected encoder size) of the current logits."""
        encoder = self._model().encoder
        if self.size_unit is None:
            zero = encoder.arch_logits_head.sum() * 0
            return zero, zero.detach()
        size = encoder.expected_size(self.size_unit)
        excess = size if self.size_budget is None else torch.relu(
            size - self.size_budget)
        return self.size_weight * excess / self.size_scale, size.detach()

    def _arch_step(self) -> Dict[str, torch.Tensor]:
        model = self._model()
        params = model.encoder.arch_parameters()
        batch = next(self._arch_iter)
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        penalty, size = self.size_penalty()
        total = loss + penalty
        # gradients for the logits only: the weights' own step is separate
        grads = torch.autograd.grad(total, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        self.arch_optimizer.step()
        for p in params:
            p.grad = None
        return dict(arch_loss=loss.detach(), size_penalty=penalty.detach(),
                    expected_size=size)

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        tau = temperature(self._iter, self._max_iters, self.warmup_iters,
                          self.tau)
        encoder = self._model().encoder
        encoder.tau = tau
        # no gradient for the logits in the weight step: the weight
        # optimiser skips parameters without one, so they stay as they are
        arch = encoder.arch_parameters()
        for p in arch:
            p.requires_grad_(False)
        try:
            outputs = self.runner.model.train_step(
                data_batch, optim_wrapper=self.runner.optim_wrapper)
        finally:
            for p in arch:
                p.requires_grad_(True)
        if self._iter >= self.warmup_iters:
            outputs.update(self._arch_step())
        outputs['tau'] = torch.tensor(tau)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1
