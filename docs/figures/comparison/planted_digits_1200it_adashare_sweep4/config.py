branch = dict(
    probe=dict(dataset='val', num_samples=64),
    random_trees=3,
    sweep=dict(data_fraction=0.25, iters=60, mode='shared-bottom'))
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'branched_mtl',
    ])
dataset_type = 'branched_mtl.PlantedDigits'
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False,
        interval=1200,
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
factor_values = dict(
    bg_colour=4, digit=10, fg_colour=4, stripe_orientation=4, stripe_period=2)
groups = dict(
    colour=[
        'fg_colour',
        'bg_colour',
    ],
    identity=[
        'digit',
        'parity',
        'large',
    ],
    pose=[
        'rotation',
        'rotation_sign',
    ],
    texture=[
        'stripe_orientation',
        'stripe_period',
    ])
iters = 1200
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
            base_channels=8,
            depth=18,
            out_indices=(3, ),
            stem_channels=8,
            type='mmpretrain.ResNet'),
        branches=None,
        tasks=[
            'digit',
            'parity',
            'large',
            'rotation',
            'rotation_sign',
            'stripe_orientation',
            'stripe_period',
            'fg_colour',
            'bg_colour',
        ],
        type='BranchedEncoder'),
    head=dict(
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        task_heads=dict(
            bg_colour=dict(
                in_channels=64, num_classes=4,
                type='mmpretrain.LinearClsHead'),
            digit=dict(
                in_channels=64,
                num_classes=10,
                type='mmpretrain.LinearClsHead'),
            fg_colour=dict(
                in_channels=64, num_classes=4,
                type='mmpretrain.LinearClsHead'),
            large=dict(
                in_channels=64, num_classes=2,
                type='mmpretrain.LinearClsHead'),
            parity=dict(
                in_channels=64, num_classes=2,
                type='mmpretrain.LinearClsHead'),
            rotation=dict(
                in_channels=64, num_classes=4,
                type='mmpretrain.LinearClsHead'),
            rotation_sign=dict(
                in_channels=64, num_classes=2,
                type='mmpretrain.LinearClsHead'),
            stripe_orientation=dict(
                in_channels=64, num_classes=4,
                type='mmpretrain.LinearClsHead'),
            stripe_period=dict(
                in_channels=64, num_classes=2,
                type='mmpretrain.LinearClsHead')),
        type='MultiTaskHead'),
    type='BranchedMultiTaskModel')
num_classes = dict(
    bg_colour=4,
    digit=10,
    fg_colour=4,
    large=2,
    parity=2,
    rotation=4,
    rotation_sign=2,
    stripe_orientation=4,
    stripe_period=2)
optim_wrapper = dict(
    optimizer=dict(lr=0.002, type='AdamW', weight_decay=0.0001),
    type='OptimWrapper')
palette = [
    'red',
    'green',
    'blue',
    'yellow',
]
param_scheduler = [
    dict(
        begin=0,
        by_epoch=False,
        end=1200,
        eta_min=1e-05,
        type='CosineAnnealingLR'),
]
pipeline = [
    dict(
        multi_task_fields=('gt_label', ),
        type='mmpretrain.PackMultiTaskInputs'),
]
randomness = dict(seed=0)
render = dict(
    colours=[
        'red',
        'green',
        'blue',
        'yellow',
    ],
    groups=dict(
        colour=[
            'fg_colour',
            'bg_colour',
        ],
        identity=[
            'digit',
            'parity',
            'large',
        ],
        pose=[
            'rotation',
            'rotation_sign',
        ],
        texture=[
            'stripe_orientation',
            'stripe_period',
        ]),
    image_size=(
        48,
        48,
    ),
    noise=0.03,
    pool_sizes=(
        3000,
        1000,
        1000,
    ),
    rotation=(
        -60,
        60,
    ),
    scale=(
        0.75,
        1.0,
    ),
    shift=4,
    stripe_contrast=0.4,
    stripe_orientations=4,
    stripe_periods=[
        6,
        12,
    ],
    task_specs=dict(
        bg_colour=dict(factor='bg_colour', op='class'),
        digit=dict(factor='digit', op='class'),
        fg_colour=dict(factor='fg_colour', op='class'),
        large=dict(edges=[
            5,
        ], factor='digit', op='bin'),
        parity=dict(factor='digit', op='parity'),
        rotation=dict(edges=[
            -30,
            0,
            30,
        ], factor='rotation', op='bin'),
        rotation_sign=dict(edges=[
            0,
        ], factor='rotation', op='bin'),
        stripe_orientation=dict(factor='stripe_orientation', op='class'),
        stripe_period=dict(factor='stripe_period', op='class')))
resume = False
stripe_periods = [
    6,
    12,
]
task_specs = dict(
    bg_colour=dict(factor='bg_colour', op='class'),
    digit=dict(factor='digit', op='class'),
    fg_colour=dict(factor='fg_colour', op='class'),
    large=dict(edges=[
        5,
    ], factor='digit', op='bin'),
    parity=dict(factor='digit', op='parity'),
    rotation=dict(edges=[
        -30,
        0,
        30,
    ], factor='rotation', op='bin'),
    rotation_sign=dict(edges=[
        0,
    ], factor='rotation', op='bin'),
    stripe_orientation=dict(factor='stripe_orientation', op='class'),
    stripe_period=dict(factor='stripe_period', op='class'))
tasks = [
    'digit',
    'parity',
    'large',
    'rotation',
    'rotation_sign',
    'stripe_orientation',
    'stripe_period',
    'fg_colour',
    'bg_colour',
]
test_cfg = dict(type='TestLoop')
test_dataloader = dict(
    batch_size=250,
    dataset=dict(
        colours=[
            'red',
            'green',
            'blue',
            'yellow',
        ],
        groups=dict(
            colour=[
                'fg_colour',
                'bg_colour',
            ],
            identity=[
                'digit',
                'parity',
                'large',
            ],
            pose=[
                'rotation',
                'rotation_sign',
            ],
            texture=[
                'stripe_orientation',
                'stripe_period',
            ]),
        image_size=(
            48,
            48,
        ),
        noise=0.03,
        num_samples=2000,
        pipeline=[
            dict(
                multi_task_fields=('gt_label', ),
                type='mmpretrain.PackMultiTaskInputs'),
        ],
        pool_sizes=(
            3000,
            1000,
            1000,
        ),
        rotation=(
            -60,
            60,
        ),
        scale=(
            0.75,
            1.0,
        ),
        shift=4,
        split='test',
        stripe_contrast=0.4,
        stripe_orientations=4,
        stripe_periods=[
            6,
            12,
        ],
        task_specs=dict(
            bg_colour=dict(factor='bg_colour', op='class'),
            digit=dict(factor='digit', op='class'),
            fg_colour=dict(factor='fg_colour', op='class'),
            large=dict(edges=[
                5,
            ], factor='digit', op='bin'),
            parity=dict(factor='digit', op='parity'),
            rotation=dict(edges=[
                -30,
                0,
                30,
            ], factor='rotation', op='bin'),
            rotation_sign=dict(edges=[
                0,
            ], factor='rotation', op='bin'),
            stripe_orientation=dict(factor='stripe_orientation', op='class'),
            stripe_period=dict(factor='stripe_period', op='class')),
        tasks=[
            'digit',
            'parity',
            'large',
            'rotation',
            'rotation_sign',
            'stripe_orientation',
            'stripe_period',
            'fg_colour',
            'bg_colour',
        ],
        type='branched_mtl.PlantedDigits'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    task_metrics=dict(
        bg_colour=dict(type='mmpretrain.Accuracy'),
        digit=dict(type='mmpretrain.Accuracy'),
        fg_colour=dict(type='mmpretrain.Accuracy'),
        large=dict(type='mmpretrain.Accuracy'),
        parity=dict(type='mmpretrain.Accuracy'),
        rotation=dict(type='mmpretrain.Accuracy'),
        rotation_sign=dict(type='mmpretrain.Accuracy'),
        stripe_orientation=dict(type='mmpretrain.Accuracy'),
        stripe_period=dict(type='mmpretrain.Accuracy')),
    type='branched_mtl.MultiTaskMetric')
train_cfg = dict(max_iters=1200, type='IterBasedTrainLoop', val_interval=120)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        colours=[
            'red',
            'green',
            'blue',
            'yellow',
        ],
        groups=dict(
            colour=[
                'fg_colour',
                'bg_colour',
            ],
            identity=[
                'digit',
                'parity',
                'large',
            ],
            pose=[
                'rotation',
                'rotation_sign',
            ],
            texture=[
                'stripe_orientation',
                'stripe_period',
            ]),
        image_size=(
            48,
            48,
        ),
        noise=0.03,
        num_samples=6000,
        pipeline=[
            dict(
                multi_task_fields=('gt_label', ),
                type='mmpretrain.PackMultiTaskInputs'),
        ],
        pool_sizes=(
            3000,
            1000,
            1000,
        ),
        rotation=(
            -60,
            60,
        ),
        scale=(
            0.75,
            1.0,
        ),
        shift=4,
        split='train',
        stripe_contrast=0.4,
        stripe_orientations=4,
        stripe_periods=[
            6,
            12,
        ],
        task_specs=dict(
            bg_colour=dict(factor='bg_colour', op='class'),
            digit=dict(factor='digit', op='class'),
            fg_colour=dict(factor='fg_colour', op='class'),
            large=dict(edges=[
                5,
            ], factor='digit', op='bin'),
            parity=dict(factor='digit', op='parity'),
            rotation=dict(edges=[
                -30,
                0,
                30,
            ], factor='rotation', op='bin'),
            rotation_sign=dict(edges=[
                0,
            ], factor='rotation', op='bin'),
            stripe_orientation=dict(factor='stripe_orientation', op='class'),
            stripe_period=dict(factor='stripe_period', op='class')),
        tasks=[
            'digit',
            'parity',
            'large',
            'rotation',
            'rotation_sign',
            'stripe_orientation',
            'stripe_period',
            'fg_colour',
            'bg_colour',
        ],
        type='branched_mtl.PlantedDigits'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=True, type='InfiniteSampler'))
val_cfg = dict(type='ValLoop')
val_dataloader = dict(
    batch_size=250,
    dataset=dict(
        colours=[
            'red',
            'green',
            'blue',
            'yellow',
        ],
        groups=dict(
            colour=[
                'fg_colour',
                'bg_colour',
            ],
            identity=[
                'digit',
                'parity',
                'large',
            ],
            pose=[
                'rotation',
                'rotation_sign',
            ],
            texture=[
                'stripe_orientation',
                'stripe_period',
            ]),
        image_size=(
            48,
            48,
        ),
        noise=0.03,
        num_samples=1000,
        pipeline=[
            dict(
                multi_task_fields=('gt_label', ),
                type='mmpretrain.PackMultiTaskInputs'),
        ],
        pool_sizes=(
            3000,
            1000,
            1000,
        ),
        rotation=(
            -60,
            60,
        ),
        scale=(
            0.75,
            1.0,
        ),
        shift=4,
        split='probe',
        stripe_contrast=0.4,
        stripe_orientations=4,
        stripe_periods=[
            6,
            12,
        ],
        task_specs=dict(
            bg_colour=dict(factor='bg_colour', op='class'),
            digit=dict(factor='digit', op='class'),
            fg_colour=dict(factor='fg_colour', op='class'),
            large=dict(edges=[
                5,
            ], factor='digit', op='bin'),
            parity=dict(factor='digit', op='parity'),
            rotation=dict(edges=[
                -30,
                0,
                30,
            ], factor='rotation', op='bin'),
            rotation_sign=dict(edges=[
                0,
            ], factor='rotation', op='bin'),
            stripe_orientation=dict(factor='stripe_orientation', op='class'),
            stripe_period=dict(factor='stripe_period', op='class')),
        tasks=[
            'digit',
            'parity',
            'large',
            'rotation',
            'rotation_sign',
            'stripe_orientation',
            'stripe_period',
            'fg_colour',
            'bg_colour',
        ],
        type='branched_mtl.PlantedDigits'),
    num_workers=0,
    persistent_workers=False,
    sampler=dict(shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    task_metrics=dict(
        bg_colour=dict(type='mmpretrain.Accuracy'),
        digit=dict(type='mmpretrain.Accuracy'),
        fg_colour=dict(type='mmpretrain.Accuracy'),
        large=dict(type='mmpretrain.Accuracy'),
        parity=dict(type='mmpretrain.Accuracy'),
        rotation=dict(type='mmpretrain.Accuracy'),
        rotation_sign=dict(type='mmpretrain.Accuracy'),
        stripe_orientation=dict(type='mmpretrain.Accuracy'),
        stripe_period=dict(type='mmpretrain.Accuracy')),
    type='branched_mtl.MultiTaskMetric')
width = 8
