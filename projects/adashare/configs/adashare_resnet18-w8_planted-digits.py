# AdaShare on PlantedDigits: the main job's config (width-8 ResNet-18, nine
# tasks, 1200 iterations, probe split held out) with the search settings of
# the comparison (docs/comparison.md):
#   python tools/analysis/compare_methods.py \
#       projects/adashare/configs/adashare_resnet18-w8_planted-digits.py \
#       --work-dir DIR --budget 6MFLOPs --methods all_shared,rsa,adashare
# The search turns the config's BranchedEncoder into a PolicyEncoder with
# the same backbone and tasks; the project's import registers `adashare`,
# and the comparison leaves it out of the config the models train with, so
# the single-task and all-shared models of the main config's comparison
# are found, not retrained.
#
# AdaShare's network has the parameters of one network (every task runs
# its own path through shared blocks), so a parameter budget above
# all-shared leaves its size knob nothing to do: compare it at a FLOPs
# budget: per image, the all-shared network is 2.16 MFLOPs and the nine
# single-task networks 19.4 MFLOPs together (comparison records).
_base_ = ['../../../configs/planted_digits/branch_planted_digits.py']
custom_imports = dict(
    imports=['branched_mtl', 'projects.adashare.adashare'],
    allow_failed_imports=False)
# Chosen before any AdaShare run on this test bed, by cost and by the size
# range the budgets need, never by a score: the search's DEFAULTS, sized
# for 8 residual blocks and a 1200-iteration schedule, which this config
# has too (ResNet-18: layer1.0 .. layer4.1), and the MultiDigits config's
# four sparsity weights, from the paper's 0.001 (most blocks kept) to 1.0
# (most skipped); the network is chosen by size alone.
adashare = dict(sparsity_weights=[0.001, 0.01, 0.1, 1.0])
