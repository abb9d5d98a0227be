# All-shared SegFormer MiT-B0 (mmseg MixVisionTransformer) on SyntheticScenes
# at 64x128, the five dense tasks of
# resnet18-narrow-d8-psp_all-shared_synthetic-scenes-64x128.py (same data,
# metrics, loss weights and schedule). The blocks of the tree are MiT's four
# stages (stage0..stage3: overlapping patch embedding, layers, norm); every
# task gets the stock backbone's four maps (strides 4..32). semseg reads all
# four with a stock SegformerHead; the other tasks' heads are PSP heads on
# the last map. For pretrained weights give the backbone
#   init_cfg=dict(type='Pretrained', checkpoint=<local path>)
_base_ = [
    '../synthetic_scenes/resnet18-narrow-d8-psp_all-shared_synthetic-scenes-64x128.py'  # noqa
]
channels = [32, 64, 160, 256]
norm_cfg = dict(type='BN', requires_grad=True)
psp = dict(in_channels=channels[-1], in_index=3, channels=32,
           pool_scales=(1, 2, 3, 6), dropout_ratio=0.0, norm_cfg=norm_cfg,
           align_corners=False)
model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    encoder=dict(
        backbone=dict(
            _delete_=True,
            type='mmseg.MixVisionTransformer',
            in_channels=3,
            embed_dims=32,
            num_stages=4,
            num_layers=[2, 2, 2, 2],
            num_heads=[1, 2, 5, 8],
            patch_sizes=[7, 3, 3, 3],
            sr_ratios=[8, 4, 2, 1],
            out_indices=(0, 1, 2, 3),
            mlp_ratio=4,
            qkv_bias=True,
            drop_rate=0.0,
            attn_drop_rate=0.0,
            drop_path_rate=0.1)),
    head=dict(task_heads=dict(
        _delete_=True,
        semseg=dict(type='mmseg.SegformerHead', in_channels=channels,
                    in_index=[0, 1, 2, 3], channels=64, dropout_ratio=0.0,
                    num_classes=5, norm_cfg=norm_cfg, align_corners=False),
        depth=dict(type='PSPDepthHead', **psp),
        normals=dict(type='PSPNormalHead', **psp),
        edges=dict(type='PSPEdgeHead', **psp),
        instance=dict(type='PSPOffsetHead', **psp))))
# SegFormer's recipe: AdamW 6e-5 (x10 for the heads), no decay on norms
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_block': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
        'task_heads': dict(lr_mult=10.0),
        'task_heads.depth.conv_seg.bias': dict(lr_mult=1000.0,
                                               decay_mult=0.0)}))
