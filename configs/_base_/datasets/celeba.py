# CelebA (official layout under data/celeba, not downloadable here): one
# binary classification task per attribute (40).
tasks = [
    '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes',
    'Bald', 'Bangs', 'Big_Lips', 'Big_Nose', 'Black_Hair', 'Blond_Hair',
    'Blurry', 'Brown_Hair', 'Bushy_Eyebrows', 'Chubby', 'Double_Chin',
    'Eyeglasses', 'Goatee', 'Gray_Hair', 'Heavy_Makeup', 'High_Cheekbones',
    'Male', 'Mouth_Slightly_Open', 'Mustache', 'Narrow_Eyes', 'No_Beard',
    'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline',
    'Rosy_Cheeks', 'Sideburns', 'Smiling', 'Straight_Hair', 'Wavy_Hair',
    'Wearing_Earrings', 'Wearing_Hat', 'Wearing_Lipstick',
    'Wearing_Necklace', 'Wearing_Necktie', 'Young'
]
dataset_type = 'CelebA'
data_root = 'data/celeba/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.Resize', scale=(224, 224)),
    dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.PackMultiTaskInputs',
         multi_task_fields=('gt_label', )),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmpretrain.Resize', scale=(224, 224)),
    dict(type='mmpretrain.PackMultiTaskInputs',
         multi_task_fields=('gt_label', )),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 tasks=tasks, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 tasks=tasks, pipeline=test_pipeline))
val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics={t: dict(type='mmpretrain.Accuracy') for t in tasks})
test_evaluator = val_evaluator
