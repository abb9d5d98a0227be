# NYUv2 (mmseg's NYU layout plus segmentation/ and normals/ folders under
# data/nyu, not downloadable here): 40-class segmentation, depth, normals.
tasks = ['semseg', 'depth', 'normals']
dataset_type = 'NYUv2MultiTask'
data_root = 'data/nyu/'
num_classes = 40
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadTaskAnnotations', reduce_zero_label=True),
    dict(type='LoadTaskDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='LoadNormalMap'),
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadTaskAnnotations', reduce_zero_label=True),
    dict(type='LoadTaskDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='LoadNormalMap'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
# NYUv2's standard split has no validation part: every decision (affinity
# probe, recombined runs, best checkpoint, early stopping) reads
# `probe_split`, a fixed part of the 795 training images held out of
# training; the 654 test images are read once per model by its final test.
train_source = dict(type=dataset_type, data_root=data_root, split='train',
                    num_classes=num_classes, tasks=tasks)
probe_split = dict(num_samples=100, seed=0)
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ProbeSplit', part='train', **probe_split,
                 dataset=dict(**train_source, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ProbeSplit', part='probe', **probe_split,
                 dataset=dict(**train_source, pipeline=test_pipeline)))
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 num_classes=num_classes, tasks=tasks,
                 pipeline=test_pipeline))
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
