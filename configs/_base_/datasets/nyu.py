# NYUv2 (mmseg's NYU layout plus segmentation/ and normals/ folders under
# data/nyu, not downloadable here): 40-class segmentation, depth, normals.
tasks = ['semseg', 'depth', 'normals']
dataset_type = 'NYUv2MultiTask'
data_root = 'data/nyu/'
num_classes = 40
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg.LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='LoadNormalMap'),
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg.LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg.LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='LoadNormalMap'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 num_classes=num_classes, tasks=tasks,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 num_classes=num_classes, tasks=tasks,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(
        semseg=dict(type='TaskIoUMetric', num_classes=num_classes,
                    iou_metrics=['mIoU']),
        depth=dict(type='mmseg.DepthMetric'),
        normals=dict(type='NormalMetric')),
    primary=dict(semseg='mIoU', depth='rmse', normals='mean'),
    lower_is_better=['depth', 'normals'])
test_evaluator = val_evaluator
