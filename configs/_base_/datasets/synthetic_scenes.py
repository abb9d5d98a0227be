# SyntheticScenes: rendered scenes (no download), 256x512 like the paper's
# Cityscapes setting; three dense tasks by default. All six tasks:
# semseg, depth, normals, edges, instance, scene.
tasks = ['semseg', 'depth', 'normals']
dataset_type = 'SyntheticScenes'
img_size = (256, 512)
classes = ('wall', 'floor', 'sphere', 'box', 'panel')
train_pipeline = [
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=5)),
]
test_pipeline = [dict(type='PackDenseTaskInputs', num_classes=dict(semseg=5))]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, split='train', num_samples=4000,
                 img_size=img_size, tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='val', num_samples=500,
                 img_size=img_size, tasks=tasks, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='test', num_samples=500,
                 img_size=img_size, tasks=tasks, pipeline=test_pipeline))
# one entry per task; MultiTaskMetric reports <task>/<key> and, with
# `reference`, delta_m against single-task numbers
all_task_metrics = dict(
    semseg=dict(type='TaskIoUMetric', classes=classes, iou_metrics=['mIoU']),
    depth=dict(type='mmseg.DepthMetric'),
    normals=dict(type='NormalMetric'),
    edges=dict(type='EdgeMetric', tolerance=1),
    instance=dict(type='OffsetMetric'),
    scene=dict(type='mmpretrain.Accuracy'))
primary = dict(semseg='mIoU', depth='rmse', normals='mean',
               edges='fmeasure', instance='mean_error',
               scene='accuracy/top1')
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics={t: all_task_metrics[t] for t in tasks},
    primary={t: primary[t] for t in tasks},
    lower_is_better=[t for t in ('depth', 'normals', 'instance')
                     if t in tasks])
test_evaluator = val_evaluator
