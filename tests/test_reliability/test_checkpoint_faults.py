"""Checkpoints under faults: a truncated latest one, a full disk, and a kill
between a checkpoint and the validation of its step."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

from reliability_helpers import (CONFIGS, TOOLS, env, nice, run_main,
                                 tiny_options)

CFG = osp.join(CONFIGS, 'resnet18-thin_all-shared_multidigits.py')


def train_argv(wd, iters, *extra, ckpt=2):
    opts = tiny_options(str(wd), iters=iters, ckpt_interval=ckpt)
    # the best checkpoint by the probe score, as tools/branch.py keeps it
    opts += ['default_hooks.checkpoint.save_best=score',
             'default_hooks.checkpoint.rule=greater']
    # in-process runs in one second must not share mmengine's message hub
    opts.append(f'experiment_name=run_{time.time_ns()}')
    return [CFG, '--work-dir', str(wd), *extra, '--cfg-options', *opts]


def loads(path):
    torch.load(path, map_location='cpu', weights_only=True)
    return True


def log_text(wd):
    return ''.join(open(p).read() for p in sorted(
        glob.glob(osp.join(str(wd), '2*', '*.log'))))


def test_truncated_latest_checkpoint_is_set_aside(tmp_path, capsys):
    wd = tmp_path / 'run'
    code, err = run_main('train', train_argv(wd, 4), capsys)
    assert code == 0, err
    latest = wd / 'iter_4.pth'
    whole = latest.read_bytes()
    latest.write_bytes(whole[:len(whole) // 3])  # a crash mid-write
    assert open(wd / 'last_checkpoint').read().strip() == str(latest)

    code, err = run_main('train', train_argv(wd, 6, '--resume'), capsys)
    assert code == 0, err
    aside = wd / 'iter_4.pth.corrupt'
    # reported by name, kept (renamed, never deleted), resumed from iter 2
    assert aside.read_bytes() == whole[:len(whole) // 3]
    text = log_text(wd)
    assert f'checkpoint {latest} is truncated or corrupt' in text
    assert f'set aside as {aside}' in text
    assert 'resumed epoch: 0, iter: 2' in text
    assert loads(wd / 'iter_4.pth') and loads(wd / 'iter_6.pth')
    assert torch.load(wd / 'iter_6.pth', map_location='cpu')['meta'][
        'iter'] == 6


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of its own (root and CAP_SYS_ADMIN), resizable."""
    mnt = tmp_path / 'disk'
    mnt.mkdir()
    out = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs',
                          str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip('cannot mount a tmpfs here (needs root and '
                    f'CAP_SYS_ADMIN): {out.stderr.strip()[:200]}')

    def resize(size_bytes: int) -> None:
        size_k = max(1, size_bytes // 1024)
        subprocess.run(['mount', '-o', f'remount,size={size_k}k', str(mnt)],
                       check=True)

    yield mnt, resize
    subprocess.run(['umount', '-l', str(mnt)], check=False)


def test_full_disk_leaves_no_partial_checkpoint(small_disk, capsys):
    mnt, resize = small_disk
    wd = mnt / 'run'
    code, err = run_main('train', train_argv(wd, 2), capsys)
    assert code == 0, err
    size = (wd / 'iter_2.pth').stat().st_size
    used = sum(osp.getsize(p) for p in glob.glob(
        osp.join(str(mnt), '**'), recursive=True) if osp.isfile(p))
    resize(used + size // 2)  # the next checkpoint cannot fit

    code, err = run_main('train', train_argv(wd, 4, '--resume'), capsys)
    assert code == 2, err
    assert f'could not write checkpoint {wd}/iter_4.pth: the disk is full' \
        in err, err
    assert 'run the same command again' in err
    # nothing that looks like a checkpoint, no temp file left behind
    assert sorted(p.name for p in wd.glob('*.pth')) == [
        'best_score_iter_2.pth', 'iter_2.pth']
    assert not [p for p in wd.rglob('*') if p.name.endswith('.tmp')]
    assert loads(wd / 'iter_2.pth')

    resize(64 << 20)  # space freed: the same command resumes and finishes
    code, err = run_main('train', train_argv(wd, 4, '--resume'), capsys)
    assert code == 0, err
    assert loads(wd / 'iter_4.pth')
    assert 'resumed epoch: 0, iter: 2' in log_text(wd)


KILLER = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillBeforeValHook(Hook):
    """kill -9 of its own process at the first validation: after the
    checkpoint of that step, before its probe score."""

    def __init__(self, flag):
        self.flag = flag

    def before_val(self, runner):
        if not os.path.exists(self.flag):
            open(self.flag, 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_kill_between_checkpoint_and_validation(tmp_path, capsys):
    (tmp_path / 'killer_hook.py').write_text(KILLER)
    flag = tmp_path / 'killed'
    cfg = tmp_path / 'killed_cfg.py'
    cfg.write_text(f"_base_ = [{CFG!r}]\n"
                   "custom_imports = dict(imports=['branched_mtl', "
                   "'killer_hook'], allow_failed_imports=False)\n"
                   f"custom_hooks = [dict(type='KillBeforeValHook', "
                   f"flag={str(flag)!r})]\n")
    wd = tmp_path / 'run'
    argv = train_argv(wd, 4, ckpt=4)
    argv[0] = str(cfg)
    e = env()
    e['PYTHONPATH'] = str(tmp_path) + os.pathsep + e['PYTHONPATH']
    out = subprocess.run(nice() + [sys.executable,
                                   osp.join(TOOLS, 'train.py'), *argv],
                         env=e, capture_output=True, text=True, timeout=600)
    assert out.returncode == -9 and flag.exists(), out.stderr[-2000:]
    assert (wd / 'iter_4.pth').exists()  # the checkpoint of step 4 ...
    assert not glob.glob(str(wd / 'best_*.pth'))  # ... but no probe score

    # resumed at the last step: mmengine alone would end at once, with no
    # probe score and no best checkpoint for the job to test
    code, err = run_main('train', train_argv(wd, 4, '--resume', ckpt=4),
                         capsys)
    assert code == 0, err
    assert (wd / 'best_score_iter_4.pth').exists()
    assert 'validating step 4 now' in log_text(wd)
    steps = [json.loads(line).get('step') for path in glob.glob(
        str(wd / '2*' / 'vis_data' / 'scalars.json'))
        for line in open(path) if '"score"' in line]
    assert steps == [4]
