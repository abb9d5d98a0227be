# The main job on SyntheticScenes (dense tasks: semseg, depth, normals) with
# the paper's Cityscapes model (dilated ResNet-50 + one PSP head per task,
# 256x512). GPU-sized; not part of `make demo`:
#   python tools/branch.py configs/synthetic_scenes/branch_synthetic_scenes.py \
#       --work-dir work_dirs/branch_synthetic_scenes --budget 60% \
#       --launcher pytorch --gpus 1
# Every model (single-task, branched, all-shared, random) trains with this
# same schedule.
_base_ = ['./resnet50-d8-psp_all-shared_synthetic-scenes-256x512.py']
iters = 4000
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=1000))
# for --affinity tournament, the recombination sweep in the paper's setting:
# every recombined run trained with this schedule on all the training scenes
# (a cut of iterations and data failed its validation on MultiDigits,
# docs/comparison.md)
branch = dict(
    random_trees=3,
    probe=dict(dataset='val', num_samples=64),
    sweep=dict(mode='shared-bottom'))
