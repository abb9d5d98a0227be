from .dense_heads import (DenseRegressionMixin, DepthHeadMixin, EdgeHeadMixin,
                          FCNDepthHead, FCNEdgeHead, FCNNormalHead,
                          FCNOffsetHead, NormalHeadMixin, OffsetHeadMixin,
                          PSPDepthHead, PSPEdgeHead, PSPNormalHead,
                          PSPOffsetHead)
from .multi_task_head import MultiTaskHead

__all__ = [
    'MultiTaskHead', 'DenseRegressionMixin', 'DepthHeadMixin',
    'NormalHeadMixin', 'EdgeHeadMixin', 'OffsetHeadMixin', 'PSPDepthHead',
    'FCNDepthHead', 'PSPNormalHead', 'FCNNormalHead', 'PSPEdgeHead',
    'FCNEdgeHead', 'PSPOffsetHead', 'FCNOffsetHead'
]
