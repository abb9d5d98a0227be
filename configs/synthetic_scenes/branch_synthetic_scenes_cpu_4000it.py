# A third candidate schedule for SyntheticScenes' comparison redo, added
# (docs/comparison.md, "SyntheticScenes") when every single-task model of
# `branch_synthetic_scenes_cpu_2000it.py` still improved over its last
# fifth in seeds 0 and 1, before any method of the redo ran: 4000
# iterations of batch 8 (8 epochs of the 4,000 scenes), the same PolyLR
# shape, model, loss weights and sweep. It is the redo's schedule only if
# its references are flat over their last fifth; first measured on the
# single-task models of seeds 0 and 1:
#   python tools/analysis/compare_methods.py \
#       configs/synthetic_scenes/branch_synthetic_scenes_cpu_4000it.py \
#       --work-dir DIR --budgets 40%,60% --seed S --seeds 1 \
#       --methods all_shared --random-trees 5
_base_ = ['./branch_synthetic_scenes_cpu_1200it.py']
iters = 4000
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=iters,
         by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=iters))
