# The paper's Cityscapes setting: dilated ResNet-50 + one PSP decoder per
# task (semseg: cross-entropy; instance: L1 on offsets; depth: MSE), 256x512,
# uniform loss weights. Every encoder block shared (the baseline MTL model);
# see the branched config for the tree the paper finds.
_base_ = [
    '../_base_/models/branched_resnet50_dilated_psp.py',
    '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py',
]
_psp = dict(in_channels=2048, channels=512, pool_scales=(1, 2, 3, 6),
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False)
model = dict(
    encoder=dict(tasks=['semseg', 'instance', 'depth']),
    head=dict(task_heads=dict(
        _delete_=True,
        semseg=dict(type='mmseg.PSPHead', num_classes=19, **_psp),
        instance=dict(type='PSPOffsetHead', **_psp),
        depth=dict(type='PSPDepthHead',
                   loss_decode=dict(type='DepthLoss', criterion='mse'),
                   **_psp))))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000,
                 val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=4000))
