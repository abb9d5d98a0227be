# MultiDigits: two sklearn digits side by side, five classification tasks.
tasks = ['left', 'right', 'left_parity', 'right_parity', 'sum']
# named with its scope so that loops from a stock mmseg::/mmpretrain:: schedule
# in _base_ (which build data sets and metrics in their own scope) find it
dataset_type = 'branched_mtl.MultiDigits'
pipeline = [
    dict(type='mmpretrain.PackMultiTaskInputs', multi_task_fields=('gt_label',)),
]
# The training pairs; `probe_split` holds a fixed part of them out. Models
# train on the rest; every decision (affinity probe, recombined runs, best
# checkpoint, early stopping) reads the held-out part through the val loader;
# the test split is read once per model, by its final test.
train_source = dict(type=dataset_type, split='train', num_samples=6000,
                    tasks=tasks)
probe_split = dict(num_samples=500, seed=0)
# No worker processes, and persistent_workers says so: mmpretrain's own
# tools/train.py defaults it to True, which torch refuses without workers.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='branched_mtl.ProbeSplit', part='train', **probe_split,
                 dataset=dict(**train_source, pipeline=pipeline)))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='branched_mtl.ProbeSplit', part='probe', **probe_split,
                 dataset=dict(**train_source, pipeline=pipeline)))
test_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='test', num_samples=1000,
                 tasks=tasks, pipeline=pipeline))
val_evaluator = dict(
    type='branched_mtl.MultiTaskMetric',
    task_metrics={t: dict(type='mmpretrain.Accuracy') for t in tasks})
test_evaluator = val_evaluator
