"""The probe reads neither a test image nor a training sample, and holds
the samples it needs; checked from what the loaders read, before training.

Before, the check compared the loaders' config dicts for equality: a val
loader on the test split with an explicit default seed, or the train part
of the ProbeSplit, passed; a ProbeSplit larger than its data set passed and
died later with a traceback; the sweep's ``--probe-samples 64`` against a
24-sample probe trained every single-task job, then failed.
"""
import os

import pytest

from reliability_helpers import run_main, write_main_config

TEST_SPLIT = """
val_dataloader = dict(_delete_=True, batch_size=8, dataset=dict(
    type='MultiDigits', split='test', num_samples={n}, seed=0, tasks=tasks,
    pipeline=[dict(type='PackMultiTaskInputs')]))
"""
CASES = {
    # the test split's pairs, its dict differing only by an explicit seed
    'test split, explicit seed': (TEST_SPLIT.format(n=24),
                                  'val_dataloader reads the test images'),
    # other pairs, drawn from the same test digits
    'test digits, other pairs': (TEST_SPLIT.format(n=23),
                                 'val_dataloader reads the test images'),
    # the probe reads the model's own training samples
    'train part': ("val_dataloader = dict(dataset=dict(part='train'))\n",
                   "the 'train' part of its ProbeSplit"),
    # a ProbeSplit of 500 over 88 samples
    'probe larger than its data': (
        'train_dataloader = dict(dataset=dict(num_samples=500, '
        'dataset=dict(num_samples=88)))\n'
        'val_dataloader = dict(dataset=dict(num_samples=500, '
        'dataset=dict(num_samples=88)))\n',
        'num_samples=500 leaves no training samples in a training set of '
        '88'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_branch_refuses_a_probe_that_reads_what_it_must_not(
        tmp_path, capsys, case):
    extra, message = CASES[case]
    cfg = write_main_config(tmp_path, extra)
    wd = tmp_path / 'wd'
    code, err = run_main('branch', [cfg, '--work-dir', wd, '--budget', '70%',
                                    '--random-trees', '0'], capsys)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not wd.exists()


def test_probe_overlapping_the_training_samples_is_refused(tmp_path):
    """Another seed for the probe part than for the train part: the parts
    are no longer complements; found from the samples, not the dicts."""
    from branched_mtl.pipeline import BranchJob
    from branched_mtl.utils import UserError
    cfg = write_main_config(
        tmp_path, 'val_dataloader = dict(dataset=dict(num_samples=24, '
        'seed=1, dataset=dict(num_samples=56, tasks=tasks)))\n')
    with pytest.raises(UserError, match='are also in train_dataloader'):
        BranchJob(cfg, str(tmp_path / 'wd'), budget='70%', random_trees=0)


def test_sweep_refuses_more_probe_samples_than_the_probe_holds(
        tmp_path, capsys):
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    code, err = run_main('sweep_recombination', [
        cfg, '--work-dir', wd, '--launcher', 'none', '--tasks', 'left,sum',
        '--splits', '1', '--probe-samples', '64'], capsys)
    assert code == 2, err
    assert 'the probe split has 24 samples but the affinity probe needs ' \
        '--probe-samples=64' in err, err
    assert not wd.exists()


def test_sweep_refuses_data_lacking_a_task(tmp_path, capsys):
    """Point 6: the sweep reset the single-task data set's tasks and
    trained it; tools/branch.py and tools/train.py refused the config."""
    cfg = write_main_config(
        tmp_path, "train_dataloader = dict(dataset=dict(dataset=dict("
        "tasks=['left', 'left_parity'])))\n")
    wd = tmp_path / 'wd'
    code, err = run_main('sweep_recombination', [
        cfg, '--work-dir', wd, '--launcher', 'none', '--probe-samples', '8',
        '--splits', '1'], capsys)
    assert code == 2, err
    assert "the training data gives labels for ['left', 'left_parity'] " \
        "only" in err and "['sum'] would never be trained" in err, err
    assert not wd.exists() or not os.listdir(wd)
