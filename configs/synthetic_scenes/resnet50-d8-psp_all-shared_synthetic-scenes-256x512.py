# Baseline: dilated ResNet-50 fully shared by semseg, depth and normals on
# SyntheticScenes at 256x512, uniform loss weights (as in the paper).
_base_ = [
    '../_base_/models/branched_resnet50_dilated_psp.py',
    '../_base_/datasets/synthetic_scenes.py',
    '../_base_/default_runtime.py',
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=20000,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000,
                 val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=2000))
