# The tree the paper reports on Cityscapes (Fig. 4a): stem..layer3 shared,
# each task its own layer4.
_base_ = ['./resnet50-d8-psp_all-shared_cityscapes-256x512.py']
model = dict(encoder=dict(branches=[
    [['semseg', 'instance', 'depth']],
    [['semseg', 'instance', 'depth']],
    [['semseg', 'instance', 'depth']],
    [['semseg', 'instance', 'depth']],
    [['semseg'], ['instance'], ['depth']],
]))
