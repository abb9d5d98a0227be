# The main job on MultiDigits, sized for a 2-core CPU (make demo):
#   python tools/branch.py configs/multidigits/branch_multidigits.py \
#       --work-dir work_dirs/branch_multidigits --budget 60%
# Every model (single-task, branched, all-shared, random) trains with this
# same schedule.
_base_ = ['./resnet18-thin_all-shared_multidigits.py']
iters = 400
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=iters))
# settings of tools/branch.py: R random trees of the chosen size, the
# held-out samples the AffinityHook probes in every run, and (for
# --affinity tournament) the cost cutters of the recombination sweep
branch = dict(
    random_trees=3,
    probe=dict(dataset='val', num_samples=64),
    sweep=dict(mode='shared-bottom', iters=60, data_fraction=0.25))
