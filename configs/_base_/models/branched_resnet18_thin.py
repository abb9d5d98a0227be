# A thin ResNet-18 (16 base channels) encoder with one linear head per task.
# The encoder is stock mmpretrain ResNet; BranchedEncoder shares its blocks
# (stem, layer1..layer4) as the tree in `branches` says (None: all shared).
model = dict(
    type='BranchedMultiTaskModel',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
    encoder=dict(
        type='BranchedEncoder',
        backbone=dict(
            type='mmpretrain.ResNet', depth=18, base_channels=16,
            stem_channels=16, out_indices=(3, )),
        tasks=['left', 'right', 'left_parity', 'right_parity', 'sum'],
        branches=None),
    head=dict(
        type='MultiTaskHead',
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        task_heads=dict(
            left=dict(type='mmpretrain.LinearClsHead', num_classes=10,
                      in_channels=128),
            right=dict(type='mmpretrain.LinearClsHead', num_classes=10,
                       in_channels=128),
            left_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                             in_channels=128),
            right_parity=dict(type='mmpretrain.LinearClsHead', num_classes=2,
                              in_channels=128),
            sum=dict(type='mmpretrain.LinearClsHead', num_classes=19,
                     in_channels=128))))
