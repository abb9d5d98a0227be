"""The branched multi-task network: preprocessor, encoder tree, task heads."""
from typing import Dict, List, Optional, Sequence, Union

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
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 encoder: dict,
                 head: dict,
                 data_preprocessor: Optional[dict] = None,
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

    @property
    def tasks(self) -> List[str]:
        return list(self.encoder.tasks)

    def extract_feat(self, inputs: Tensor) -> Dict[str, tuple]:
        """Per task, the features of its branch of the encoder."""
        return self.encoder(inputs)

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
