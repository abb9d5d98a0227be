"""Every bad value that can be checked before training is refused before
training: one ``tool: error:`` line naming the value, exit status 2,
nothing trained and no work dir created.

Before, each of these was refused only after training (the tournament
sweep over a subset of splits, an unknown ``branch.sweep`` key, a task
name that is not an identifier), made every sweep job fail (``--port
70000``, ``--early-stop-interval 0``, an unknown model type), was silently
changed (``--data-fraction 1e-9`` became one sample, ``random_trees=2.9``
became 2), or ended in a traceback (``--seed -1``, ``--input-shape
1,32,64``, records nested 100,000 deep, a lock file that is a folder or on
a file system without locks). The lock holder's record was printed as
written, escape codes included.
"""
import errno
import fcntl
import json
import os
import os.path as osp

import pytest

from reliability_helpers import run_main, write_main_config

BRANCH = ['--budget', '70%', '--random-trees', '0']
PROBE = "dict(dataset='val', num_samples=8)"
SWEEP = ['--launcher', 'none', '--tasks', 'left,sum', '--splits', '1',
         '--probe-samples', '8']


def refused(tool, argv, capsys, expected, wd):
    code, err = run_main(tool, argv, capsys)
    assert code == 2, err
    assert expected in err, err
    # argparse's errors come after its usage line: one error line
    assert len([ln for ln in err.splitlines() if 'error:' in ln]) == 1, err
    assert 'Traceback' not in err
    assert not osp.exists(wd) or not os.listdir(wd), os.listdir(wd)


@pytest.mark.parametrize('extra, argv, expected', [
    ('', ['--seed', '-1'], '--seed: must be a whole number >= 0'),
    ('', ['--seed', str(2**32)], '--seed: must be a whole number <= '),
    ('branch = dict(random_trees=2.9, probe=PROBE)\n', [],
     'branch.random_trees must be a whole number >= 0, got 2.9'),
    ("branch = dict(sweep=dict(splits='1,3'), probe=PROBE)\n",
     ['--affinity', 'tournament'],
     "branch.sweep.splits='1,3': the tournament affinity needs every "
     'split'),
    ('branch = dict(sweep=dict(itres=10), probe=PROBE)\n',
     ['--affinity', 'tournament'],
     'branch.sweep: unrecognized arguments: --itres 10'),
    ("branch = dict(sweep=dict(iters='many'), probe=PROBE)\n",
     ['--affinity', 'tournament'],
     "branch.sweep: argument --iters: invalid int value: 'many'"),
    ("tasks = ['left', 'left_parity', 'sum-x']\n"
     "model = dict(encoder=dict(tasks=tasks), head=dict(task_heads=dict("
     "_delete_=True, left=dict(type='mmpretrain.LinearClsHead', "
     "num_classes=10, in_channels=128), left_parity=dict(type="
     "'mmpretrain.LinearClsHead', num_classes=2, in_channels=128), "
     "**{'sum-x': dict(type='mmpretrain.LinearClsHead', num_classes=19, "
     "in_channels=128)})))\n", [],
     "task name(s) ['sum-x'] are not Python identifiers"),
])
def test_branch_refuses_before_training(tmp_path, capsys, extra, argv,
                                        expected):
    cfg = write_main_config(tmp_path, extra.replace('PROBE', PROBE))
    wd = tmp_path / 'wd'
    argv = [a for a in BRANCH if 'random_trees' not in extra or a not in (
        '--random-trees', '0')] + argv
    refused('branch', [cfg, '--work-dir', wd] + argv, capsys,
            expected, wd)


def test_empty_work_dir_is_refused(tmp_path, capsys, monkeypatch):
    cfg = write_main_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    for tool, argv in (('branch', [cfg, '--work-dir', ''] + BRANCH),
                       ('sweep_recombination',
                        [cfg, '--work-dir', ''] + SWEEP),
                       ('train', [cfg, '--work-dir', ''])):
        code, err = run_main(tool, argv, capsys)
        assert code == 2 and "--work-dir '' is empty" in err, (tool, err)
    assert sorted(os.listdir(tmp_path)) == ['tiny.py']


@pytest.mark.parametrize('argv, expected', [
    (['--early-stop', '2', '--early-stop-interval', '0'],
     '--early-stop-interval must be a whole number >= 1, got 0'),
    (['--port', '70000'], '--port must be in 1..65535'),
    (['--data-fraction', '1e-9'],
     '--data-fraction 1e-09 keeps no sample of the 32 training samples'),
    (['--data-fraction', 'nan'], '--data-fraction must be in (0, 1]'),
    (['--iters', '0'], '--iters must be a whole number >= 1, got 0'),
    (['--cfg-options', 'model.type=Nope'], 'Nope'),
])
def test_sweep_refuses_before_training(tmp_path, capsys, argv, expected):
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    refused('sweep_recombination', [cfg, '--work-dir', wd] + SWEEP + argv,
            capsys, expected, wd)


def test_build_tree_refuses_an_input_shape_the_model_cannot_run(
        tmp_path, capsys):
    import numpy as np
    from mmengine.config import Config

    from branched_mtl.affinity import save_affinity
    from branched_mtl.models import describe_model
    cfg = write_main_config(tmp_path)
    layers = describe_model(Config.fromfile(cfg).model.to_dict())[
        'block_names']
    aff = tmp_path / 'affinity.json'
    save_affinity(aff, ['left', 'left_parity', 'sum'], layers, 'rsa',
                  np.full((len(layers), 3, 3), 0.5), {})
    out = tmp_path / 'tree.py'
    code, err = run_main('build_tree', [aff, cfg, '--alpha', '0.1',
                                        '--input-shape', '1,32,64', '--out',
                                        out], capsys)
    assert code == 2, err
    assert '--input-shape 1,32,64: the model cannot run' in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


DEEP = '[' * 100_000 + ']' * 100_000


def test_records_nested_too_deep_are_damaged_not_fatal(tmp_path):
    """A stage record, a job's failed.json or job.json, a probe's
    meta.json nested 100,000 deep: read as damaged, never a
    RecursionError (which killed the sweep parent and left its worker)."""
    from branched_mtl.affinity.collect import read_probe
    from branched_mtl.apis.sweep import Job
    from branched_mtl.apis.sweep.jobs import _read_meta
    from branched_mtl.apis.sweep.worker import failed_in_run
    from branched_mtl.pipeline import StageBook
    (tmp_path / 'stages').mkdir()
    (tmp_path / 'stages' / 'tree.json').write_text(DEEP)
    book = StageBook(str(tmp_path))
    assert book.done('tree', 'fp') is None and book.stale('tree', 'fp')
    job = Job('j', 1, str(tmp_path / 'j'))
    os.makedirs(job.job_dir)
    for name in ('failed.json', 'job.json'):
        (tmp_path / 'j' / name).write_text(DEEP)
    assert failed_in_run(job, 'run') is None
    assert _read_meta(job.meta_path) == {}
    probe = tmp_path / 'j' / 'affinity_probe'
    probe.mkdir()
    (probe / 'meta.json').write_text(DEEP)
    with pytest.raises(ValueError, match='nested too deep'):
        read_probe(str(tmp_path / "j"))


def test_done_job_without_its_probe_is_run_again(tmp_path):
    """done.json left, affinity_probe/ deleted: every later run failed at
    the collection without saying what to delete."""
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         write_jobs)
    cfg = write_main_config(tmp_path)
    plan = plan_sweep(load_plan_config(cfg), str(tmp_path / 'wd'),
                      tasks='left,sum', splits='1', mode='shared-bottom',
                      iters=2, probe_samples=8)
    write_jobs(plan, 'none')
    job = plan.jobs[-1]
    with open(job.done_path, 'w') as f:
        json.dump(dict(job=job.name), f)
    lines = []
    write_jobs(plan, 'none', log=lines.append)
    assert not job.is_done()
    assert any(job.name in line and 'affinity_probe' in line
               for line in lines), lines
    assert any(n.startswith('done.json.') for n in os.listdir(job.job_dir))


def test_lock_file_that_is_a_folder(tmp_path):
    from branched_mtl.utils import UserError, WorkDirLock
    (tmp_path / '.workdir.lock').mkdir()
    with pytest.raises(UserError, match=r'\.workdir\.lock is a folder'):
        WorkDirLock(str(tmp_path)).acquire()


def test_file_system_without_locks(tmp_path, monkeypatch):
    from branched_mtl.utils import UserError, WorkDirLock
    from branched_mtl.utils import lock as lock_module

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock_module.fcntl, 'flock', no_locks)
    with pytest.raises(UserError, match='does not support file locks'):
        WorkDirLock(str(tmp_path)).acquire()


def test_lock_holder_record_is_printed_harmless(tmp_path):
    from branched_mtl.utils import WorkDirBusy, WorkDirLock
    path = tmp_path / '.workdir.lock'
    path.write_text(json.dumps(dict(pid='1; rm -rf /', host='\x1b[2Jhost',
                                    command='x', since='now')))
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(WorkDirBusy) as e:
            WorkDirLock(str(tmp_path)).acquire()
        assert 'rm -rf' not in str(e.value) and '\x1b' not in str(e.value)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(dict(
            pid=42, host='\x1b[2Jh', command='a\x07b\nc',
            since='t')).encode(), 0)
        with pytest.raises(WorkDirBusy) as e:
            WorkDirLock(str(tmp_path)).acquire()
        text = str(e.value)
        assert 'process 42 on ?[2Jh' in text and '`a?b?c`' in text, text
        assert not any(c in text for c in '\x1b\x07\n')
    finally:
        os.close(fd)


def _project_tool(project):
    from reliability_helpers import ROOT, _load
    return _load(osp.join(ROOT, 'projects', project, 'tools', 'search.py'),
                 f'reliability_{project}_search')


@pytest.mark.parametrize('argv, expected', [
    (['--params-target', '1e400'], "'1e400' is too large to be a size"),
    (['--sparsity-weight', 'inf'],
     "adashare.sparsity_weight must be a finite number, got 'inf'"),
    (['--cfg-options', 'adashare.rounds=abc'],
     "adashare.rounds must be a whole number >= 1, got 'abc'"),
    (['--seed', '-1'], '--seed must be a whole number in [0, 2**32)'),
    (['--cfg-options', "train_dataloader.dataset.dataset.tasks=['left',"
      "'left_parity']"], "['sum'] would never be trained"),
])
def test_adashare_refuses_before_searching(tmp_path, capsys, argv,
                                          expected):
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    code = _project_tool('adashare').main(
        [cfg, '--work-dir', str(wd)] + argv)
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not wd.exists()


def test_adashare_work_dir_under_a_file_and_the_lock(tmp_path, capsys):
    from branched_mtl.utils import WorkDirLock
    cfg = write_main_config(tmp_path)
    (tmp_path / 'file').write_text('')
    search = _project_tool('adashare')
    assert search.main([cfg, '--work-dir', str(tmp_path / 'file' / 'x')]) \
        == 2
    assert 'is a file, not a folder' in capsys.readouterr().err
    # a second run in the same work dir stops at once, naming the first
    wd = tmp_path / 'wd'
    with WorkDirLock(str(wd), 'first search'):
        assert search.main([cfg, '--work-dir', str(wd)]) == 2
    assert 'is in use by another run' in capsys.readouterr().err


def test_ltb_refuses_a_temperature_that_is_not_a_number(tmp_path, capsys):
    cfg = write_main_config(tmp_path)
    code = _project_tool('learning_to_branch').main(
        [cfg, '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
         'ltb.tau=abc'])
    err = capsys.readouterr().err
    assert code == 2 and "ltb.tau must be (start, end), two finite " \
        "numbers > 0, got 'abc'" in err, err


def test_compare_methods_refuses_an_empty_method_list(tmp_path, capsys):
    """``--methods ''`` ran every method."""
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    refused('compare_methods', [cfg, '--work-dir', wd, '--budget', '70%',
                                '--methods', ''], capsys,
            "--methods '' names no method", wd)
