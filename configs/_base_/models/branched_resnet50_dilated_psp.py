# The paper's dense model: a dilated ResNet-50 (mmseg ResNetV1c, output
# stride 8) shared as a tree, one pyramid pooling (PSP) decoder per task.
# BranchedEncoder shares stem, layer1..layer4 as `branches` says.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='BranchedMultiTaskModel',
    data_preprocessor=dict(
        type='DenseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        pad_size_divisor=8),
    encoder=dict(
        type='BranchedEncoder',
        backbone=dict(
            type='mmseg.ResNetV1c',
            depth=50,
            num_stages=4,
            out_indices=(3, ),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            contract_dilation=True),
        tasks=['semseg', 'depth', 'normals'],
        branches=None),
    head=dict(
        type='MultiTaskHead',
        task_heads=dict(
            semseg=dict(type='mmseg.PSPHead', in_channels=2048, channels=512,
                        pool_scales=(1, 2, 3, 6), num_classes=5,
                        norm_cfg=norm_cfg, align_corners=False),
            depth=dict(type='PSPDepthHead', in_channels=2048, channels=512,
                       pool_scales=(1, 2, 3, 6), norm_cfg=norm_cfg,
                       align_corners=False),
            normals=dict(type='PSPNormalHead', in_channels=2048,
                         channels=512, pool_scales=(1, 2, 3, 6),
                         norm_cfg=norm_cfg, align_corners=False))))
