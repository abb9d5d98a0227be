branch = dict(
    max_parallel=1,
    precollate=True,
    probe=dict(dataset='val', num_samples=64),
    random_trees=2,
    sweep=dict(
        data_fraction=0.25, iters=60, max_parallel=1, mode='shared-bottom'))
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'branched_mtl',
    ])
dataset_type = 'branched_mtl.MultiDigits'
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False,
        interval=700,
        max_keep_ckpts=2,
        save_last=True,
        type='CheckpointHook'),
    logger=dict(interval=100, log_metric_by_epoch=False, type='LoggerHook'),
    param_scheduler=dict(type='ParamSchedulerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    timer=dict(type='IterTimerHook'))
default_scope = 'branched_mtl'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
iters = 700
load_from = None
log_level = 'INFO'
log_processor = dict(by_epoch=False)
model = dict(
    data_preprocessor=dict(
        mean=[
            127.5,
            127.5,
            127.5,
        ],
        std=[
            127.5,
            127.5,
            127.5,
        ],
        type='ImgDataPreprocessor'),
    encoder=dict(
        backbone=dict(
            base_channels=16,
            depth=18,
            out_indices=(3, ),
            stem_channels=16,
            type='mmpretrain.ResNet'),
        branches=None,
        tasks=[
            'left',
            'right',
            'left_parity',
            'right_parity',
            'sum',
        ],
        type='BranchedEncoder'),
    head=dict(
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        task_heads=dict(
            left=dict(
                in_channels=128,
                num_classes=10,
                type='mmpretrain.LinearClsHead'),
            left_parity=dict(
                in_channels=128,
                num_classes=2,
                type='mmpretrain.LinearClsHead'),
            right=dict(
                in_channels=128,
                num_classes=10,
                type='mmpretrain.LinearClsHead'),
            right_parity=dict(
                in_channels=128,
                num_classes=2,
                type='mmpretrain.LinearClsHead'),
            sum=dict(
                in_channels=128,
                num_classes=19,
                type='mmpretrain.LinearClsHead')),
        type='MultiTaskHead'),
    type='BranchedMultiTaskModel')
optim_wrapper = dict(
    optimizer=dict(lr=0.006, type='AdamW', weight_decay=0.0001),
    type='OptimWrapper')
param_scheduler = [
    dict(
        begin=0,
        by_epoch=False,
        end=700,
        eta_min=1e-05,
        type='CosineAnnealingLR'),
]
pipeline = [
    dict(
        multi_task_fields=('gt_label', ),
        type='mmpretrain.PackMultiTaskInputs'),
]
probe_split = dict(num_samples=500, seed=0)
randomness = dict(seed=0)
resume = False
tasks = [
    'left',
    'right',
    'left_parity',
    'right_parity',
    'sum',
]
test_cfg = dict(type='TestLoop')
test_dataloader = dict(
    batch_size=128,
    dataset=dict(
        num_samples=1000,
        pipeline=[
            dict(
                multi_task_fields=('gt_label', ),
                type='mmpretrain.PackMultiTaskInputs'),
        ],
        split='test',
        tasks=[
            'left',
            'right',
            'left_parity',
            'right_parity',
            'sum',
        ],
        type='branched_mtl.MultiDigits'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    task_metrics=dict(
        left=dict(type='mmpretrain.Accuracy'),
        left_parity=dict(type='mmpretrain.Accuracy'),
        right=dict(type='mmpretrain.Accuracy'),
        right_parity=dict(type='mmpretrain.Accuracy'),
        sum=dict(type='mmpretrain.Accuracy')),
    type='branched_mtl.MultiTaskMetric')
train_cfg = dict(max_iters=700, type='IterBasedTrainLoop', val_interval=70)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        dataset=dict(
            num_samples=6000,
            pipeline=[
                dict(
                    multi_task_fields=('gt_label', ),
                    type='mmpretrain.PackMultiTaskInputs'),
            ],
            split='train',
            tasks=[
                'left',
                'right',
                'left_parity',
                'right_parity',
                'sum',
            ],
            type='branched_mtl.MultiDigits'),
        num_samples=500,
        part='train',
        seed=0,
        type='branched_mtl.ProbeSplit'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=True, type='InfiniteSampler'))
train_source = dict(
    num_samples=6000,
    split='train',
    tasks=[
        'left',
        'right',
        'left_parity',
        'right_parity',
        'sum',
    ],
    type='branched_mtl.MultiDigits')
val_cfg = dict(type='ValLoop')
val_dataloader = dict(
    batch_size=128,
    dataset=dict(
        dataset=dict(
            num_samples=6000,
            pipeline=[
                dict(
                    multi_task_fields=('gt_label', ),
                    type='mmpretrain.PackMultiTaskInputs'),
            ],
            split='train',
            tasks=[
                'left',
                'right',
                'left_parity',
                'right_parity',
                'sum',
            ],
            type='branched_mtl.MultiDigits'),
        num_samples=500,
        part='probe',
        seed=0,
        type='branched_mtl.ProbeSplit'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    task_metrics=dict(
        left=dict(type='mmpretrain.Accuracy'),
        left_parity=dict(type='mmpretrain.Accuracy'),
        right=dict(type='mmpretrain.Accuracy'),
        right_parity=dict(type='mmpretrain.Accuracy'),
        sum=dict(type='mmpretrain.Accuracy')),
    type='branched_mtl.MultiTaskMetric')
