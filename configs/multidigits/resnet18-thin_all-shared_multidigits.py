# Baseline: every block of the encoder shared by all five tasks.
_base_ = [
    '../_base_/models/branched_resnet18_thin.py',
    '../_base_/datasets/multidigits.py',
    '../_base_/schedules/multidigits_600it.py',
    '../_base_/default_runtime.py',
]
