# The main job on MultiDigits with converged baselines (docs/benchmarks.md;
# every single-task model, `sum` included, stops improving on the probe
# split before the last fifth of the schedule):
#   python tools/branch.py configs/multidigits/branch_multidigits.py \
#       --work-dir work_dirs/branch_multidigits --budget 60% --seeds 3
# `make demo` runs a shorter schedule: branch_multidigits_demo.py.
# Every model (single-task, branched, all-shared, random) trains with this
# same schedule, validates on the probe split (held out of the training
# pairs, see _base_/datasets/multidigits.py) every tenth of it, and keeps its
# best checkpoint there by the same rule.
_base_ = ['./resnet18-thin_all-shared_multidigits.py']
iters = 1200
train_cfg = dict(max_iters=iters, val_interval=iters // 10)
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=iters))
# settings of tools/branch.py: R random trees of the chosen size, the
# samples of the probe split that the AffinityHook probes in every run, and
# (for --affinity tournament) the recombination sweep: the paper's setting,
# every recombined run trained with this schedule on all the training
# data (no `iters` or `data_fraction`: a cut of 60 iterations on a quarter
# of the data failed its validation on MultiDigits, docs/comparison.md)
branch = dict(
    random_trees=3,
    probe=dict(dataset='val', num_samples=64),
    sweep=dict(mode='shared-bottom'))
