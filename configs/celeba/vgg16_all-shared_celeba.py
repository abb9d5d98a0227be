# CelebA: VGG-16 shared by the 40 attribute tasks; the paper's schedule
# (SGD, momentum 0.9, lr 0.05, batch 32, weight decay 1e-4, 120k iterations,
# lr / 10 every 40k).
_base_ = [
    '../_base_/models/branched_vgg16_celeba.py',
    '../_base_/datasets/celeba.py',
    '../_base_/default_runtime.py',
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[40000, 80000],
         gamma=0.1)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=120000,
                 val_interval=10000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=10000))
