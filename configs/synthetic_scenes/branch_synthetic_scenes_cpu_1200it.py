# SyntheticScenes' comparison redo (docs/comparison.md, "SyntheticScenes"):
# the CPU main job with the shorter of the two schedules the plan names,
# written down before any run of it. The schedule is chosen on the five
# single-task models and the all-shared model alone over 3 seeds: this one
# (1200 iterations of batch 8, 2.4 epochs of the 4,000 scenes) if every
# one of their probe curves is flat over its last fifth, else
# `branch_synthetic_scenes_cpu_2000it.py`. The loss weights stay those of
# the gradient rule in the base config.
#   python tools/analysis/compare_methods.py \
#       configs/synthetic_scenes/branch_synthetic_scenes_cpu_1200it.py \
#       --work-dir DIR --budgets 40%,60% --seed 0 --seeds 3 --random-trees 5
# (`branch.random_trees` is the main job's, tools/branch.py; compare_methods
# takes its own --random-trees, 10 by default)
_base_ = ['./branch_synthetic_scenes_cpu.py']
iters = 1200
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
         by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=iters))
branch = dict(
    random_trees=5,
    # the paper's tournament: recombined runs with this schedule on all the
    # scenes (the base config's 50-iteration cut is a preview)
    sweep=dict(_delete_=True, mode='shared-bottom'))
