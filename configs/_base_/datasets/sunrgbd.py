# SUN RGB-D in its official layout (not downloadable here): unzip
# SUNRGBD.zip and SUNRGBDtoolbox.zip into data/sunrgbd/, then write the
# 37-class label pngs once with branched_mtl.datasets.export_sunrgbd_labels
# (see SUNRGBDMultiTask). Tasks: 37-class segmentation and depth; for
# normals of your own add 'normals' to tasks, dict(type='LoadNormalMap')
# after the annotations and a NormalMetric. The loaders read the selected
# tasks only, so single-task copies of this config keep the pipeline.
tasks = ['semseg', 'depth']
dataset_type = 'SUNRGBDMultiTask'
data_root = 'data/sunrgbd/SUNRGBD/'
# relative to data_root: alltrain (5285) / alltest (5050)
split_file = '../SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat'
num_classes = 37
# images are 640x480 to 730x530 by sensor: one size for batching (labels
# and depth nearest, normals tilted by DenseResize)
img_scale = (640, 480)  # (w, h)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSUNRGBDAnnotations', max_depth=8.0),
    dict(type='DenseResize', scale=img_scale, keep_ratio=False),
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSUNRGBDAnnotations', max_depth=8.0),
    dict(type='DenseResize', scale=img_scale, keep_ratio=False),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
# SUN RGB-D's standard split has no validation part: every decision reads
# `probe_split`, a fixed part of the 5285 training images held out of
# training; the 5050 test images are read once per model by its final test.
train_source = dict(type=dataset_type, data_root=data_root, split='train',
                    split_file=split_file, tasks=tasks)
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
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 split_file=split_file, tasks=tasks,
                 pipeline=test_pipeline))
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(
        semseg=dict(type='TaskIoUMetric', num_classes=num_classes,
                    iou_metrics=['mIoU']),
        depth=dict(type='mmseg.DepthMetric')),
    primary=dict(semseg='mIoU', depth='rmse'),
    lower_is_better=['depth'])
test_evaluator = val_evaluator
