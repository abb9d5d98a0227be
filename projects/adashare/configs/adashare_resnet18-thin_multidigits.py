# AdaShare on MultiDigits: the main job's config (thin ResNet-18, five
# tasks, 1200-iteration schedule, probe split, same heads and losses) with
# the encoder replaced by a PolicyEncoder: one shared network, a select/skip
# policy per task and residual block (8 blocks: layer1.0 .. layer4.1).
#   PYTHONPATH=. python projects/adashare/tools/search.py \
#       projects/adashare/configs/adashare_resnet18-thin_multidigits.py \
#       --work-dir work_dirs/adashare/search
# writes work_dirs/adashare/search/adashare.py, which retrains the derived
# policy from scratch with this same schedule (tools/train.py).
_base_ = ['../../../configs/multidigits/branch_multidigits.py']
custom_imports = dict(
    imports=['branched_mtl', 'projects.adashare.adashare'],
    allow_failed_imports=False)
tasks = ['left', 'right', 'left_parity', 'right_parity', 'sum']
model = dict(
    encoder=dict(
        _delete_=True,
        type='PolicyEncoder',
        backbone=dict(
            type='mmpretrain.ResNet', depth=18, base_channels=16,
            stem_channels=16, out_indices=(3, )),
        tasks=tasks))
# The search's settings: DEFAULTS of projects/adashare/adashare/search.py,
# which are sized for this config (8 blocks, the main job's 1200
# iterations) and used as they are; set a key here, or --cfg-options
# adashare.KEY=VALUE, to change one. In compare_methods.py the sparsity
# weight is AdaShare's size knob: one search per weight listed here, the
# network chosen by size alone (the largest within the budget).
adashare = dict(sparsity_weights=[0.001, 0.01, 0.1, 1.0])
