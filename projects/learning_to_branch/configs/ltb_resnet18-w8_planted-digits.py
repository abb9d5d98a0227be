# Learning to Branch on PlantedDigits: the main job's config (width-8
# ResNet-18, nine tasks, 1200 iterations, probe split held out) with the
# search settings of the comparison (docs/comparison.md):
#   python tools/analysis/compare_methods.py \
#       projects/learning_to_branch/configs/ltb_resnet18-w8_planted-digits.py \
#       --work-dir DIR --budget 50% --methods all_shared,ltb
# The project's import registers the `ltb` method; the comparison leaves it
# out of the config the models train with, so the single-task and
# all-shared models of the main config's comparison are found, not retrained.
_base_ = ['../../../configs/planted_digits/branch_planted_digits.py']
custom_imports = dict(
    imports=['branched_mtl', 'projects.learning_to_branch.ltb'],
    allow_failed_imports=False)
# Chosen before any LTB run on this test bed, by cost and by what the
# budgets need, never by a score: the MultiDigits settings but K.
ltb = dict(
    # K: nodes per block. 5 can hold a tree of five groups, which the 50 %
    # and 70 % budgets admit (nine single-task networks are 100 %); more
    # nodes cost more search time per iteration
    num_nodes=5,
    iters=300,                # search iterations, a quarter of the schedule
    warmup_iters=60,          # weights only, logits still
    arch_optimizer=dict(type='Adam', lr=0.02, betas=(0.5, 0.999)),
    # the size knob: one search per weight, the tree chosen by size alone
    size_weights=[0.0, 0.3, 1.0, 3.0],
)
