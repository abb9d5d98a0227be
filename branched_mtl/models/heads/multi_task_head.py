"""MultiTaskHead: one stock head per task, each on its own features."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleDict
from mmengine.structures import BaseDataElement, PixelData
from torch import Tensor

from branched_mtl.registry import MODELS, build_stock


def _is_decode_head(head: nn.Module) -> bool:
    try:
        from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    except ImportError:  # pragma: no cover - mmseg is a hard dependency
        return False
    return isinstance(head, BaseDecodeHead)


def _crop_to_image(logit: Tensor, meta: dict) -> Tensor:
    """Drop the batch padding (bottom / right) of one sample's output."""
    img_shape = meta.get('img_shape')
    if img_shape is None or isinstance(img_shape, torch.Size):
        return logit
    h, w = int(img_shape[0]), int(img_shape[1])
    return logit[..., :h, :w]


@MODELS.register_module()
class MultiTaskHead(BaseModule):
    """One stock head per task, each fed its own task's feature tuple.

    Unlike mmpretrain's ``MultiTaskHead`` (classification heads over one
    shared feature), each task here reads the features of its own branch of
    the tree, and dense mmseg decode heads are admitted next to mmpretrain
    classification heads. The ``branched_mtl`` scope keeps the two names
    apart: ``mmpretrain.MultiTaskHead`` always means theirs.

    Args:
        task_heads: ``{task: head config}``; stock heads are built from their
            own registries (``LinearClsHead``, ``mmseg.PSPHead``, ...).
        loss_weights: ``{task: weight}``; tasks not listed weigh 1.
        neck: Config of a stock neck (e.g. ``GlobalAveragePooling``) put in
            front of every task head, one copy per task.
        max_unlabelled_batches: A task that has had no labelled sample in
            this many training batches since the start is an error (its head
            would stay untrained); 0 turns the check off. Raise it for a
            task whose labels are very rare.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 task_heads: Dict[str, dict],
                 loss_weights: Optional[Dict[str, float]] = None,
                 neck: Optional[dict] = None,
                 max_unlabelled_batches: int = 20,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not task_heads:
            raise ValueError('MultiTaskHead needs at least one task head')
        self.max_unlabelled_batches = int(max_unlabelled_batches)
        # batches seen without a label, per task never labelled so far
        self._unlabelled: Dict[str, int] = {t: 0 for t in task_heads}
        loss_weights = dict(loss_weights or {})
        unknown = set(loss_weights) - set(task_heads)
        if unknown:
            raise ValueError(f'loss_weights names unknown task(s) '
                             f'{sorted(unknown)}; tasks are '
                             f'{list(task_heads)}')
        self.tasks = list(task_heads)
        self.loss_weights = {t: float(loss_weights.get(t, 1.0))
                             for t in self.tasks}
        # mmengine's ModuleDict (a BaseModule): init_weights reaches every
        # task head, so each is initialised as its own init_cfg says
        self.task_heads = ModuleDict(
            {t: build_stock(cfg) for t, cfg in task_heads.items()})
        self.necks = ModuleDict(
            {t: build_stock(neck) for t in self.tasks}) if neck else None

    def _neck(self, feats: Dict[str, Tuple[Tensor, ...]]
              ) -> Dict[str, Tuple[Tensor, ...]]:
        if self.necks is None:
            return feats
        return {t: tuple(self.necks[t](feats[t])) for t in self.tasks}

    def forward(self, feats: Dict[str, Tuple[Tensor, ...]]
                ) -> Dict[str, Tensor]:
        """Returns: per task, the head's raw output (logits / maps)."""
        feats = self._neck(feats)
        return {t: self.task_heads[t](feats[t]) for t in self.tasks}

    @staticmethod
    def _task_samples(task: str, data_samples: Sequence[BaseDataElement]
                      ) -> Tuple[List[int], List[BaseDataElement]]:
        keep = [i for i, s in enumerate(data_samples) if task in s]
        return keep, [data_samples[i].get(task) for i in keep]

    @staticmethod
    def _select(feats: Tuple[Tensor, ...], keep: List[int],
                total: int) -> Tuple[Tensor, ...]:
        if len(keep) == total:
            return feats
        index = torch.as_tensor(keep, device=feats[0].device)
        return tuple(f.index_select(0, index) for f in feats)

    def loss(self, feats: Dict[str, Tuple[Tensor, ...]],
             data_samples: Sequence[BaseDataElement]) -> Dict[str, Tensor]:
        """Per-task losses, named ``<task>.<loss>`` and weighted.

        Samples that carry no ground truth for a task are left out of that
        task's loss.
        """
        feats = self._neck(feats)
        losses = {}
        for task in self.tasks:
            keep, samples = self._task_samples(task, data_samples)
            self._count_labels(task, bool(keep))
            if not keep:
                continue
            head = self.task_heads[task]
            task_feats = self._select(feats[task], keep, len(data_samples))
            if _is_decode_head(head):
                task_losses = head.loss(task_feats, samples, None)
            else:
                task_losses = head.loss(task_feats, samples)
            weight = self.loss_weights[task]
            for name, value in task_losses.items():
                if 'loss' in name and weight != 1.0:
                    value = value * weight
                losses[f'{task}.{name}'] = value
        return losses

    def _count_labels(self, task: str, labelled: bool) -> None:
        """Stop a run whose data never labels a task: its head would stay
        untrained while validation still reports numbers for it (the data
        set's tasks are checked before training where it names them; this
        catches data sets that do not)."""
        if task not in self._unlabelled:
            return
        if labelled:
            del self._unlabelled[task]  # labelled once: checked
            return
        self._unlabelled[task] += 1
        limit = self.max_unlabelled_batches
        if limit and self._unlabelled[task] >= limit:
            from branched_mtl.utils.errors import UserError
            raise UserError(
                f'task {task!r}: none of the first {limit} training batches '
                f'had a label for it, so its head would never be trained. '
                f'Give the training data labels for {task!r} (its `tasks`) '
                'or remove the task from the model (model.encoder.tasks and '
                'model.head.task_heads); for a task whose labels are that '
                'rare, raise model.head.max_unlabelled_batches')

    def predict(self, feats: Dict[str, Tuple[Tensor, ...]],
                data_samples: Sequence[BaseDataElement]
                ) -> List[BaseDataElement]:
        """Fill every sample's per-task sub-sample with the prediction."""
        feats = self._neck(feats)
        for task in self.tasks:
            head = self.task_heads[task]
            samples = [s.get(task) if task in s else None
                       for s in data_samples]
            if _is_decode_head(head):
                metas = [s.metainfo for s in data_samples]
                logits = head.predict(feats[task], metas, None)
                samples = [s if s is not None else BaseDataElement()
                           for s in samples]
                for sample, logit, meta in zip(samples, logits, metas):
                    logit = _crop_to_image(logit, meta)
                    if hasattr(head, 'predict_fields'):
                        # dense regression heads (depth, normals, ...)
                        sample.set_data(head.predict_fields(logit))
                        continue
                    sample.set_data(dict(seg_logits=PixelData(data=logit)))
                    pred = logit if logit.shape[0] == 1 else logit.argmax(
                        0, keepdim=True)
                    sample.set_data(dict(pred_sem_seg=PixelData(data=pred)))
            else:
                samples = head.predict(feats[task],
                                       samples if None not in samples
                                       else None)
            for sample, task_sample in zip(data_samples, samples):
                sample.set_field(task_sample, task)
        return list(data_samples)
