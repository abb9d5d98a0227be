"""InterimCheckpointHook: checkpoints that serve only to resume a run."""
from typing import Optional

from mmengine.hooks import CheckpointHook

from branched_mtl.registry import HOOKS


@HOOKS.register_module()
class InterimCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` without the save at the end of training.

    For runs whose weights nobody reads once they finish: a recombined run
    of the tournament is read through its probe losses only. Its
    checkpoints let an interrupted run resume; the one after the last
    iteration would only cost a write (about 17 MB and 0.4 s for a small
    MultiDigits recombination on this machine) and disk. Every argument is
    ``CheckpointHook``'s; ``save_last`` has no effect.
    """

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if self.is_last_train_iter(runner):
            return
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 >= runner.max_epochs:
            return
        super().after_train_epoch(runner)


__all__ = ['InterimCheckpointHook']
