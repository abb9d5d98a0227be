# NYUv2, 480x640: dilated ResNet-50 shared by semseg (40 classes), depth and
# normals, one PSP decoder per task (the paper's SUN RGB-D recipe: SGD,
# momentum 0.9, lr 0.001, batch 8, random horizontal flips).
_base_ = [
    '../_base_/models/branched_resnet50_dilated_psp.py',
    '../_base_/datasets/nyu.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(task_heads=dict(semseg=dict(num_classes=40))))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[12000, 24000],
         gamma=0.1)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=28000,
                 val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=4000))
