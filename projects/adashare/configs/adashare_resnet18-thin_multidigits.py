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
# The search (projects/adashare/adashare/search.py): 300 warm-up iterations
# of the full network, then 12 rounds of 50 weight + 25 policy iterations
# (1200 weight-or-policy iterations in all, the main job's length); the
# curriculum opens one more block per round from the top, so all 8 learn
# from round 8. Policy: Adam 0.01, wd 5e-4, and the sparsity / sharing
# weights of AdaShare's code; tau 5 -> 5 * 0.85^12 = 0.71.
adashare = dict(
    warmup_iters=300,
    rounds=12,
    weight_iters=50,
    policy_iters=25,
    curriculum_step=1,
    tau=5.0,
    tau_decay=0.85,
    sparsity_weight=0.001,
    sharing_weight=0.05,
    policy_optimizer=dict(type='Adam', lr=0.01, weight_decay=5e-4),
    policy_fraction=0.2,
    policy_seed=0)
