# MultiDigits: two sklearn digits side by side, five classification tasks.
tasks = ['left', 'right', 'left_parity', 'right_parity', 'sum']
# named with its scope so that loops from a stock mmseg::/mmpretrain:: schedule
# in _base_ (which build data sets and metrics in their own scope) find it
dataset_type = 'branched_mtl.MultiDigits'
pipeline = [
    dict(type='mmpretrain.PackMultiTaskInputs', multi_task_fields=('gt_label',)),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, split='train', num_samples=4000,
                 tasks=tasks, pipeline=pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='val', num_samples=1000,
                 tasks=tasks, pipeline=pipeline))
test_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='test', num_samples=1000,
                 tasks=tasks, pipeline=pipeline))
val_evaluator = dict(
    type='branched_mtl.MultiTaskMetric',
    task_metrics={t: dict(type='mmpretrain.Accuracy') for t in tasks})
test_evaluator = val_evaluator
