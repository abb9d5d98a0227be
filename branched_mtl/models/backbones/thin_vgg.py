"""ThinVGG: mmpretrain's VGG with at most ``width`` channels per conv.

The paper's CelebA model (thin-omega VGG-16, after Lu et al.): every conv
layer has min(omega, VGG width) channels. The stock VGG is built as usual
and each conv (and its norm) is narrowed in place, so VGG's forward,
freezing and initialisation are reused unchanged.
"""
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmpretrain.models.backbones import VGG

from branched_mtl.registry import MODELS


@MODELS.register_module()
class ThinVGG(VGG):
    """VGG with ``min(width, stock width)`` channels in every conv layer.

    Args:
        width: omega, the largest number of channels of a conv layer.
        **kwargs: The arguments of mmpretrain's ``VGG`` (``depth``,
            ``norm_cfg``, ``out_indices`` ...); ``num_classes`` must stay -1
            (the classifier belongs to the task heads).
    """

    def __init__(self, width: int = 32, **kwargs) -> None:
        if kwargs.get('num_classes', -1) > 0:
            raise ValueError('ThinVGG: the classifier of VGG is not thinned; '
                             'keep num_classes=-1 and use task heads')
        if width < 1:
            raise ValueError(f'ThinVGG: width must be >= 1, got {width}')
        super().__init__(**kwargs)
        self.width = width
        norm_cfg = kwargs.get('norm_cfg')
        in_channels = 3
        for module in getattr(self, self.module_name):
            if not isinstance(module, ConvModule):
                continue
            conv = module.conv
            out_channels = min(conv.out_channels, width)
            module.conv = nn.Conv2d(
                in_channels, out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, bias=conv.bias is not None)
            if module.with_norm:
                setattr(module, module.norm_name,
                        build_norm_layer(norm_cfg, out_channels)[1])
            in_channels = out_channels
        self.in_channels = in_channels
