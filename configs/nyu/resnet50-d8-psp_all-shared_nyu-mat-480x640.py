# resnet50-d8-psp_all-shared_nyu-480x640.py read straight from the official
# files (not downloadable here), see NYUv2MatMultiTask:
#   data/nyu/nyu_depth_v2_labeled.mat   the labeled file (1449 images)
#   data/nyu/splits.mat                 the 795 / 654 split
#   data/nyu/classMapping40.mat         894 -> 40 labels (Gupta et al.)
#   data/nyu/normals/0001.png ...       your normal maps, by 1-based index
# Without normals: tasks = ['semseg', 'depth'], drop LoadNormalMap, and the
# normals head and metric.
_base_ = ['./resnet50-d8-psp_all-shared_nyu-480x640.py']
tasks = ['semseg', 'depth', 'normals']
num_classes = 40
source = dict(type='NYUv2MatMultiTask', data_root='data/nyu/',
              num_classes=num_classes, tasks=tasks, normals_dir='normals')
train_pipeline = [
    dict(type='LoadNYUv2Mat'),
    dict(type='LoadNormalMap'),
    dict(type='DenseRandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
test_pipeline = [
    dict(type='LoadNYUv2Mat'),
    dict(type='LoadNormalMap'),
    dict(type='PackDenseTaskInputs', num_classes=dict(semseg=num_classes)),
]
# the base's probe split of the 795 training images, the 654 test images
# read only by the final test
probe_split = dict(num_samples=100, seed=0)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ProbeSplit', part='train',
                 **probe_split,
                 dataset=dict(**source, split='train',
                              pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='ProbeSplit', part='probe',
                 **probe_split,
                 dataset=dict(**source, split='train',
                              pipeline=test_pipeline)))
test_dataloader = dict(
    dataset=dict(_delete_=True, **source, split='test',
                 pipeline=test_pipeline))
