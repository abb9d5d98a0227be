# All-shared ConvNeXt-T (mmpretrain) on SyntheticScenes at 64x128, the five
# dense tasks of resnet18-narrow-d8-psp_all-shared_synthetic-scenes-64x128.py
# (same data, metrics, loss weights and schedule). The blocks of the tree are
# ConvNeXt's stem and its four stages (stem, stage0..stage3); every task gets
# the stock backbone's four normed maps (strides 4..32). semseg reads all
# four with a stock UPerHead; the other tasks' heads are PSP heads on the
# last map. To start from ImageNet weights, give the backbone
#   init_cfg=dict(type='Pretrained', checkpoint=<path>, prefix='backbone.')
# (a local file: nothing is downloaded at run time).
_base_ = [
    '../synthetic_scenes/resnet18-narrow-d8-psp_all-shared_synthetic-scenes-64x128.py'  # noqa
]
channels = [96, 192, 384, 768]
norm_cfg = dict(type='BN', requires_grad=True)
psp = dict(in_channels=channels[-1], in_index=3, channels=32,
           pool_scales=(1, 2, 3, 6), dropout_ratio=0.0, norm_cfg=norm_cfg,
           align_corners=False)
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    encoder=dict(
        backbone=dict(
            _delete_=True,
            type='mmpretrain.ConvNeXt',
            arch='tiny',
            out_indices=(0, 1, 2, 3),
            drop_path_rate=0.1,
            layer_scale_init_value=1.0,
            # dense heads need the maps, not their global average
            gap_before_final_norm=False)),
    head=dict(task_heads=dict(
        _delete_=True,
        semseg=dict(type='mmseg.UPerHead', in_channels=channels,
                    in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
                    channels=64, dropout_ratio=0.0, num_classes=5,
                    norm_cfg=norm_cfg, align_corners=False),
        depth=dict(type='PSPDepthHead', **psp),
        normals=dict(type='PSPNormalHead', **psp),
        edges=dict(type='PSPEdgeHead', **psp),
        instance=dict(type='PSPOffsetHead', **psp))))
# ConvNeXt's recipe: AdamW, no weight decay on norms and layer scales
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={
        '.gamma': dict(decay_mult=0.0),
        'task_heads.depth.conv_seg.bias': dict(lr_mult=100.0,
                                               decay_mult=0.0)}))
