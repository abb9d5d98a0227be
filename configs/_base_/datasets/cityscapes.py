# Cityscapes (official layout under data/cityscapes, not downloadable here):
# semantic segmentation (19 classes), instance offsets, depth from
# disparity; every image rescaled to 256x512 as in the paper.
tasks = ['semseg', 'instance', 'depth']
dataset_type = 'CityscapesMultiTask'
data_root = 'data/cityscapes/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCityscapesAnnotations'),
    dict(type='DenseResize', scale=(512, 256), keep_ratio=False),
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=19)),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadCityscapesAnnotations'),
    dict(type='DenseResize', scale=(512, 256), keep_ratio=False),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=19)),
]
# Cityscapes' own test labels are not public: its `val` split is the test
# split here, read once per model by its final test. Every decision (affinity
# probe, recombined runs, best checkpoint, early stopping) reads
# `probe_split`, a fixed part of the training images held out of training.
train_source = dict(type=dataset_type, data_root=data_root, split='train',
                    tasks=tasks)
probe_split = dict(num_samples=500, seed=0)
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
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 tasks=tasks, pipeline=test_pipeline))
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(
        semseg=dict(type='TaskIoUMetric', num_classes=19,
                    iou_metrics=['mIoU']),
        instance=dict(type='OffsetMetric'),
        depth=dict(type='mmseg.DepthMetric')),
    primary=dict(semseg='mIoU', instance='mean_error', depth='rmse'),
    lower_is_better=['instance', 'depth'])
test_evaluator = val_evaluator
