"""Checkpoints complete or absent; resume from the newest one that loads."""
import errno
import os

import pytest
import torch

from branched_mtl.utils import CheckpointError
from branched_mtl.utils.checkpoints import (atomic_save_checkpoint,
                                            describe_load_error,
                                            install_atomic_checkpoints,
                                            load_checkpoint_file,
                                            select_resume_checkpoint)


def save(path, step):
    torch.save({'meta': {'iter': step}, 'state_dict': {
        'w': torch.full((100, ), float(step))}}, path)
    return str(path)


def test_write_fails_cleanly_on_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / 'iter_4.pth'
    target.write_bytes(b'old')  # an older file under that name stays

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:10])
            raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fdopen',
                        lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(CheckpointError, match=rf'could not write checkpoint '
                       rf'{target}: the disk is full.*run the same command '
                       'again'):
        atomic_save_checkpoint({'x': torch.zeros(3)}, str(target))
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['iter_4.pth']  # no temp file


def test_mmengine_saves_through_the_atomic_writer():
    install_atomic_checkpoints()
    install_atomic_checkpoints()  # idempotent
    import mmengine.runner
    from mmengine.runner import runner
    # Runner.save_checkpoint (what CheckpointHook calls) writes with it
    assert runner.save_checkpoint is atomic_save_checkpoint
    assert mmengine.runner.save_checkpoint is atomic_save_checkpoint


def test_resume_skips_and_sets_aside_what_does_not_load(tmp_path):
    good = save(tmp_path / 'iter_2.pth', 2)
    cut = save(tmp_path / 'iter_4.pth', 4)
    data = open(cut, 'rb').read()
    open(cut, 'wb').write(data[:len(data) // 2])
    empty = tmp_path / 'iter_6.pth'
    empty.write_bytes(b'')
    save(tmp_path / 'best_score_iter_6.pth', 6)  # never resumed from
    (tmp_path / 'last_checkpoint').write_text(str(empty))
    lines = []
    assert select_resume_checkpoint(str(tmp_path), lines.append) == good
    assert (tmp_path / 'iter_6.pth.corrupt').exists()
    assert (tmp_path / 'iter_4.pth.corrupt').read_bytes() == \
        data[:len(data) // 2]
    assert f'checkpoint {empty} is empty or cut short' in lines[0]
    assert f'checkpoint {cut} is truncated or corrupt' in lines[1]
    assert 'set aside as' in lines[1]
    assert (tmp_path / 'last_checkpoint').read_text() == good
    # a second corrupt file of the same name keeps the first one aside
    open(cut, 'wb').write(b'PK\x03\x04')
    select_resume_checkpoint(str(tmp_path), lines.append)
    assert (tmp_path / 'iter_4.pth.corrupt.1').exists()


def test_nothing_loads(tmp_path):
    (tmp_path / 'iter_2.pth').write_bytes(b'junk')
    assert select_resume_checkpoint(str(tmp_path), lambda s: None) is None


class Evil:
    pass


@pytest.mark.parametrize('content, phrase', [
    (b'', 'is empty or cut short'),
    ('caf\u00e9'.encode('latin-1') * 10, 'is not a checkpoint'),
    (None, 'holds .*Evil.*could run code'),
])
def test_load_errors_name_the_file(tmp_path, content, phrase):
    path = tmp_path / 'x.pth'
    if content is None:
        torch.save({'evil': Evil()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=phrase) as info:
        load_checkpoint_file(str(path))
    assert str(path) in str(info.value)
    assert 'weights_only' not in str(info.value)
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth does not exist'):
        load_checkpoint_file(missing)
    assert 'is a folder' in describe_load_error(str(tmp_path), OSError())
