"""Two runs in one work dir: the second stops at once and names the first.

Before the lock, two ``tools/branch.py`` on one work dir ran together: one
resumed from a checkpoint the other was still writing, the other died on a
checkpoint that was rotated away.
"""
import os
import os.path as osp
import signal
import time

from reliability_helpers import (TOOLS, popen, run_dirs, run_main,
                                 write_main_config)

# long enough that the first job is still training its first model
LONG = """
iters = 400
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters, eta_min=1e-5)]
"""


def wait_for(predicate, what, proc, timeout=240):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f'first job ended before {what}'
        assert time.time() < deadline, f'no {what} after {timeout} s'
        time.sleep(0.1)


def locked_by_other(lock_file):
    """The lock file names a holder, and it is not this process."""
    try:
        with open(lock_file) as f:
            text = f.read()
    except OSError:
        return False
    return '"pid"' in text and f'"pid": {os.getpid()},' not in text


def test_second_run_is_refused_and_names_the_first(tmp_path, capsys):
    cfg = write_main_config(tmp_path, LONG)
    wd = tmp_path / 'wd'
    first = popen([osp.join(TOOLS, 'branch.py'), cfg, '--work-dir', str(wd),
                   '--budget', '70%', '--random-trees', '0'])
    try:
        left = wd / 'single_task' / 'left'
        # the first job holds the work dir and the training run it started
        wait_for(lambda: locked_by_other(left / '.workdir.lock')
                 and run_dirs(left), 'training', first)
        busy = f'is in use by another run: process {first.pid} on'

        code, err = run_main('branch', [cfg, '--work-dir', wd, '--budget',
                                        '70%', '--random-trees', '0'], capsys)
        assert code == 2 and f'{wd} {busy}' in err, err
        assert 'branch.py' in err, err  # the holder's command line

        code, err = run_main('sweep_recombination', [
            cfg, '--work-dir', wd, '--launcher', 'none', '--tasks',
            'left,sum', '--splits', '1', '--probe-samples', '8'], capsys)
        assert code == 2 and f'{wd} {busy}' in err, err

        # the training run the first job started in-process
        code, err = run_main('train', [str(left / 'config.py'), '--work-dir',
                                       str(left), '--resume'], capsys)
        assert code == 2 and f'{left} {busy}' in err, err

        # nothing of the first job was touched: one training run, no record
        assert first.poll() is None
        assert len(run_dirs(left)) == 1
        assert not (wd / 'stages').exists() or not os.listdir(wd / 'stages')
        assert not (wd / 'affinity').exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # kill -9 leaves no stale lock: the OS dropped it with the process
    from branched_mtl.utils.lock import WorkDirLock
    with WorkDirLock(str(wd), 'test'), WorkDirLock(str(left), 'test'):
        pass
