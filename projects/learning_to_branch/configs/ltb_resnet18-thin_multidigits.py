# Learning to Branch on MultiDigits: the main job's config (thin ResNet-18,
# five tasks, 1200 iterations, probe split held out of the training pairs)
# with the search settings. The search trains the supergraph for `iters`
# iterations; the tree it writes (DIR/branched.py) inherits this config and
# so retrains with exactly the main job's schedule:
#   python projects/learning_to_branch/tools/search.py \
#       projects/learning_to_branch/configs/ltb_resnet18-thin_multidigits.py \
#       --work-dir work_dirs/ltb_multidigits --budget 60%
_base_ = ['../../../configs/multidigits/branch_multidigits.py']
# Only what differs from the search's defaults: the others (the annealed
# Gumbel-softmax temperature, soft samples, the size penalty's weight) are
# DEFAULTS of projects/learning_to_branch/tools/search.py, used as they are.
ltb = dict(
    # K: nodes per block. 3 holds every tree within the 60 % budget of the
    # comparison (a fourth copy of layer4 alone would exceed it) at 3/5 of
    # the search cost of K = 5
    num_nodes=3,
    iters=300,                # search iterations (batches of 64 pairs)
    warmup_iters=60,          # weights only, logits still
    # replaces the default optimiser dict as a whole (a higher lr)
    arch_optimizer=dict(type='Adam', lr=0.02, betas=(0.5, 0.999)),
    # compare_methods.py: the size weight is LTB's size knob, one search
    # per weight, the tree chosen by size alone (the largest within the
    # budget); tools/search.py itself uses size_weight
    size_weights=[0.0, 0.3, 1.0, 3.0],
)
