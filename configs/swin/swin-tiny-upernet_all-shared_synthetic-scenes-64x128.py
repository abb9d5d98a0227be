# All-shared Swin-T (mmseg SwinTransformer, as in mmseg's UPerNet configs) on
# SyntheticScenes at 64x128, the five dense tasks of
# resnet18-narrow-d8-psp_all-shared_synthetic-scenes-64x128.py (same data,
# metrics, loss weights and schedule). The blocks of the tree are the patch
# embedding (stem) and the four stages (stage0..stage3; a stage's patch
# merging opens the next stage, as mmseg emits before merging); every task
# gets the stock backbone's four normed maps (strides 4..32). semseg reads
# all four with a stock UPerHead; the other tasks' heads are PSP heads on the
# last map. For pretrained weights give the backbone
#   init_cfg=dict(type='Pretrained', checkpoint=<local path>)
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
            type='mmseg.SwinTransformer',
            embed_dims=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            mlp_ratio=4,
            qkv_bias=True,
            drop_path_rate=0.3,
            patch_norm=True,
            out_indices=(0, 1, 2, 3))),
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
# Swin's recipe (mmseg): AdamW, no weight decay on position tables and norms
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-4, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.0),
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
        'task_heads.depth.conv_seg.bias': dict(lr_mult=100.0,
                                               decay_mult=0.0)}))
