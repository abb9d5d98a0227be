# The longer schedule of SyntheticScenes' comparison redo: 2000 iterations
# of batch 8 (4 epochs of the 4,000 scenes), taken if any single-task or
# all-shared model of `branch_synthetic_scenes_cpu_1200it.py` still
# improves over the last fifth of its schedule in any of 3 seeds (it was:
# docs/comparison.md, "SyntheticScenes"):
#   python tools/analysis/compare_methods.py \
#       configs/synthetic_scenes/branch_synthetic_scenes_cpu_2000it.py \
#       --work-dir DIR --budgets 40%,60% --seed S --seeds 1 \
#       --methods all_shared,rsa,tag,tournament --random-trees 5
_base_ = ['./branch_synthetic_scenes_cpu_1200it.py']
iters = 2000
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
         by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=iters))
