# The main job on PlantedDigits (docs/planted_digits.md):
#   python tools/branch.py configs/planted_digits/branch_planted_digits.py \
#       --work-dir work_dirs/branch_planted_digits --budget 60% --seeds 3
# Every model (single-task, branched, all-shared, random) trains with the
# schedule of the base config (1200 iterations of AdamW + cosine), validates
# on the probe split (its own 1000 MNIST digits) every tenth of it and keeps
# its best checkpoint there by the same rule; the test split (another 1000
# digits) is read once per model. The planted groups are in the data set's
# `groups`: branched_mtl.evaluation.planted_groups scores a tree and an
# affinity against them.
_base_ = ['./resnet18-w8_all-shared_planted-digits.py']
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
