# `make demo`: the main job on MultiDigits in a few minutes on 2 cores.
# Half the schedule of branch_multidigits.py, so `sum` is not converged
# there (the report says so); docs/benchmarks.md has the converged runs.
_base_ = ['./branch_multidigits.py']
iters = 600
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=iters,
         eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(interval=iters))
