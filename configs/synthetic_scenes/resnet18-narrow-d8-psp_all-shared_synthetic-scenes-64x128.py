# CPU-sized all-shared baseline on SyntheticScenes: the paper's dense model
# (dilated ResNet, output stride 8, one PSP head per task) made small enough
# for a 2-core machine: ResNet-18 (mmseg ResNetV1c, deep stem) at a quarter
# of its width, 64x128 scenes, five dense tasks. Same structure as
# resnet50-d8-psp_all-shared_synthetic-scenes-256x512.py (stem, layer1..4
# as the blocks of the tree, layer3/layer4 dilated 2/4 instead of strided).
_base_ = ['../_base_/datasets/synthetic_scenes.py',
          '../_base_/default_runtime.py']
tasks = ['semseg', 'depth', 'normals', 'edges', 'instance']
img_size = (64, 128)
norm_cfg = dict(type='BN', requires_grad=True)
width = 16  # ResNet-18's base width is 64
head = dict(in_channels=width * 8, channels=32, pool_scales=(1, 2, 3, 6),
            dropout_ratio=0.0, norm_cfg=norm_cfg, align_corners=False)
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
            depth=18,
            base_channels=width,
            stem_channels=width,
            num_stages=4,
            out_indices=(3, ),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm_cfg,
            norm_eval=False,
            style='pytorch',
            contract_dilation=True),
        tasks=tasks,
        branches=None),
    head=dict(
        type='MultiTaskHead',
        task_heads=dict(
            semseg=dict(type='mmseg.PSPHead', num_classes=5, **head),
            depth=dict(type='PSPDepthHead', **head),
            normals=dict(type='PSPNormalHead', **head),
            edges=dict(type='PSPEdgeHead', **head),
            instance=dict(type='PSPOffsetHead', **head)),
        # the losses are in their own units (depth and offsets in metres
        # and pixels, normals 1 - cos, edges a balanced BCE). Fixed by one
        # rule before any method ran (docs/comparison.md, "Training fixed
        # before any method runs"): every task the same gradient norm on
        # the shared encoder, measured on probe batches on the all-shared
        # model trained with unit weights, averaged over its checkpoints at
        # 100/200/300/400 iterations (tools/analysis/task_gradients.py;
        # docs/figures/dense/task_gradients_unit_weights.json). Unweighted,
        # offsets and depth held 56-73 % and 20-38 % of that gradient,
        # edges 0.2 %. A single-task model keeps its task's weight, which
        # Adam's per-parameter step sizes make irrelevant there.
        loss_weights=dict(semseg=0.176, depth=0.0214, normals=0.53,
                          edges=4.26, instance=0.0112)))
# the five dense tasks at 64x128; scenes render in ~4 ms each, so one
# loader worker keeps up with training on 2 cores
train_dataloader = dict(
    batch_size=8, num_workers=1,
    dataset=dict(num_samples=4000, img_size=img_size, tasks=tasks))
val_dataloader = dict(
    batch_size=16, num_workers=1,
    dataset=dict(num_samples=128, img_size=img_size, tasks=tasks))
test_dataloader = dict(
    batch_size=16, num_workers=1,
    dataset=dict(num_samples=256, img_size=img_size, tasks=tasks))
classes = ('wall', 'floor', 'sphere', 'box', 'panel')
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(
        _delete_=True,
        semseg=dict(type='TaskIoUMetric', classes=classes,
                    iou_metrics=['mIoU']),
        depth=dict(type='mmseg.DepthMetric'),
        normals=dict(type='NormalMetric'),
        edges=dict(type='EdgeMetric', tolerance=1),
        instance=dict(type='OffsetMetric')),
    primary=dict(_delete_=True, semseg='mIoU', depth='rmse', normals='mean',
                 edges='fmeasure', instance='mean_error'),
    lower_is_better=['depth', 'normals', 'instance'])
test_evaluator = val_evaluator
# Depth is in metres (scenes' mean 12 m, std 5.3 m) and the depth head's
# output starts near 0; Adam moves a bias by about lr per step, so at 2e-3
# the short schedule would be spent reaching the scale (RMSE 9.7 m after 100
# iterations, worse than predicting the mean). The depth output's bias
# steps 100x faster (0.2 m per step), which reaches the mean within the
# first ~60 iterations; every other parameter keeps the base rate.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-3, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        'task_heads.depth.conv_seg.bias': dict(lr_mult=100.0,
                                               decay_mult=0.0)}))
iters = 400
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                 val_interval=iters // 10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=iters))
