# The paper's thin-omega VGG-16 (min(omega, VGG width) channels per conv,
# mmpretrain's VGG narrowed by ThinVGG, with batch norm) shared layer by layer
# (granularity='layer': one sharable block per conv layer, as the paper
# measures affinity after every layer on CelebA), one classifier per
# attribute with fully connected layers of 2 * omega features.
omega = 32
_attrs = [
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
model = dict(
    type='BranchedMultiTaskModel',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    encoder=dict(
        type='BranchedEncoder',
        backbone=dict(type='ThinVGG', width=omega, depth=16, num_classes=-1,
                      norm_cfg=dict(type='BN'), out_indices=(4, )),
        tasks=_attrs,
        granularity='layer',
        branches=None),
    head=dict(
        type='MultiTaskHead',
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        task_heads={
            a: dict(type='mmpretrain.StackedLinearClsHead', num_classes=2,
                    in_channels=omega, mid_channels=[2 * omega])
            for a in _attrs
        }))
