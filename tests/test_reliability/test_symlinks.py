"""No file is written through a symbolic link the work dir does not own,
and nothing outside the work dir is renamed.

Before: ``ln -s SOMEFILE W/.workdir.lock`` and any tool on W truncated
SOMEFILE and wrote its lock record into it (the lock was opened with
``O_CREAT`` and no ``O_NOFOLLOW``); a ``last_checkpoint`` naming a file in
another folder made ``--resume`` rename that file to ``.corrupt``.
"""
import os
import os.path as osp

import pytest

from reliability_helpers import run_main, write_main_config

PRECIOUS = 'precious data\n'


@pytest.fixture
def precious(tmp_path):
    path = tmp_path / 'elsewhere' / 'precious.txt'
    path.parent.mkdir()
    path.write_text(PRECIOUS)
    return path


@pytest.mark.parametrize('tool', ['train', 'branch', 'sweep_recombination'])
def test_symlinked_lock_is_refused_and_its_target_untouched(
        tmp_path, precious, capsys, tool):
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    wd.mkdir()
    os.symlink(precious, wd / '.workdir.lock')
    argv = {
        'train': [cfg, '--work-dir', wd],
        'branch': [cfg, '--work-dir', wd, '--budget', '70%',
                   '--random-trees', '0'],
        'sweep_recombination': [cfg, '--work-dir', wd, '--launcher', 'none',
                                '--tasks', 'left,sum', '--splits', '1',
                                '--probe-samples', '8'],
    }[tool]
    code, err = run_main(tool, argv, capsys)
    assert code == 2, err
    assert precious.read_text() == PRECIOUS
    assert f'{wd}/.workdir.lock is a symbolic link' in err, err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1


def test_lock_linked_to_a_file_of_the_work_dir_is_refused(tmp_path):
    """A link that stays inside the work dir still must not be truncated."""
    from branched_mtl.utils import UserError, WorkDirLock
    wd = tmp_path / 'wd'
    wd.mkdir()
    (wd / 'last_checkpoint').write_text(PRECIOUS)
    os.symlink('last_checkpoint', wd / '.workdir.lock')
    with pytest.raises(UserError, match='is a symbolic link'):
        WorkDirLock(str(wd)).acquire()
    assert (wd / 'last_checkpoint').read_text() == PRECIOUS


def test_work_dir_with_a_link_out_of_it_is_refused(tmp_path, precious,
                                                   capsys):
    """mmengine rewrites ``last_checkpoint`` in place: a link under that
    name that leads out of the work dir would be written through."""
    cfg = write_main_config(tmp_path)
    wd = tmp_path / 'wd'
    wd.mkdir()
    os.symlink(precious, wd / 'last_checkpoint')
    code, err = run_main('train', [cfg, '--work-dir', wd, '--resume'], capsys)
    assert code == 2, err
    assert f'{wd}/last_checkpoint is a symbolic link to' in err, err
    assert 'outside the work dir' in err
    assert precious.read_text() == PRECIOUS


def test_resume_never_renames_a_file_outside_the_work_dir(tmp_path):
    from branched_mtl.utils.checkpoints import select_resume_checkpoint
    other = tmp_path / 'other'
    other.mkdir()
    foreign = other / 'iter_5.pth'
    foreign.write_bytes(b'PK\x03\x04 cut short')
    wd = tmp_path / 'wd'
    wd.mkdir()
    (wd / 'last_checkpoint').write_text(str(foreign))
    own = wd / 'iter_3.pth'
    own.write_bytes(b'not a checkpoint')
    lines = []
    assert select_resume_checkpoint(str(wd), log=lines.append) is None
    assert foreign.exists() and os.listdir(other) == ['iter_5.pth']
    assert any(f'{foreign}' in line and 'outside the work dir' in line
               for line in lines), lines
    # the work dir's own bad checkpoint is still set aside, as before
    assert osp.exists(f'{own}.corrupt') and not own.exists()


def test_logs_are_never_appended_through_a_link(tmp_path, precious):
    from branched_mtl.utils import UserError
    from branched_mtl.utils.io import open_append
    log = tmp_path / 'train.log'
    os.symlink(precious, log)
    with pytest.raises(UserError, match='is a symbolic link'):
        open_append(str(log))
    assert precious.read_text() == PRECIOUS
    with open_append(str(tmp_path / 'attempts.log')) as f:
        f.write('start\n')
    assert (tmp_path / 'attempts.log').read_text() == 'start\n'
