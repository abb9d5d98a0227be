"""The branched multi-task network: preprocessor, encoder tree, task heads."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from branched_mtl.registry import MODELS, build_stock


@MODELS.register_module()
class BranchedMultiTaskModel(BaseModel):
    """A :class:`BranchedEncoder` followed by a :class:`MultiTaskHead`.

    Args:
        encoder: Config of the encoder (``BranchedEncoder``).
        head: Config of the heads (``MultiTaskHead``); its tasks must be the
            encoder's tasks.
        data_preprocessor: Config of the data preprocessor, e.g. mmengine's
            ``ImgDataPreprocessor``.
        channels_last: Keep every 4-d parameter (convolution weights) and
            the image batch in the channels-last memory format (NHWC), which
            the tensor cores' convolution kernels read without a transpose:
            faster on GPUs with mixed precision, same numbers up to
            rounding. The switch is on the model rather than on its data
            preprocessor so that it also holds with stock preprocessors
            and for inputs given to ``forward`` directly.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 encoder: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
                 channels_last: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder = build_stock(encoder)
        self.head = build_stock(head)
        enc_tasks, head_tasks = list(self.encoder.tasks), list(self.head.tasks)
        if sorted(enc_tasks) != sorted(head_tasks):
            raise ValueError(
                f'encoder tasks {enc_tasks} and head tasks {head_tasks} '
                'differ')
        self.channels_last = bool(channels_last)
        self._to_channels_last()

    def _to_channels_last(self) -> None:
        """Convert the 4-d parameters and buffers when the switch is on.

        Later ``.to(device)``, checkpoint loading and in-place
        initialisation keep a tensor's memory format, so converting once
        holds for training; :meth:`init_weights` converts again because an
        initialiser may assign new tensors.
        """
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def init_weights(self) -> None:
        super().init_weights()
        self._to_channels_last()

    def _layout(self, inputs: Tensor) -> Tensor:
        # a no-op when the batch is already channels-last
        if self.channels_last and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs

    @property
    def tasks(self) -> List[str]:
        return list(self.encoder.tasks)

    def extract_feat(self, inputs: Tensor) -> Dict[str, tuple]:
        """Per task, the features of its branch of the encoder."""
        return self.encoder(self._layout(inputs))

    def loss(self, inputs: Tensor,
             data_samples: Sequence[BaseDataElement]) -> Dict[str, Tensor]:
        return self.head.loss(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(inputs))]
        return self.head.predict(self.extract_feat(inputs), data_samples)

    def _forward(self, inputs: Tensor,
                 data_samples: Optional[Sequence[BaseDataElement]] = None
                 ) -> Dict[str, Tensor]:
        return self.head(self.extract_feat(inputs))

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[Sequence[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], list]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": use loss, predict or '
                           'tensor')
