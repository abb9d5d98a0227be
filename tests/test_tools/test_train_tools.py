"""tools/train.py, --resume after kill -9, tools/dist_train.sh (gloo)."""
import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import torch
from conftest import MULTIDIGITS, ROOT, tiny_options

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_branched-example_multidigits.py')


def env():
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    e['PYTHONPATH'] = ROOT + os.pathsep + e.get('PYTHONPATH', '')
    return e


def train_cmd(work_dir, *extra, iters=12, ckpt=4, samples=128):
    opts = tiny_options(work_dir, iters=iters, ckpt_interval=ckpt,
                        samples=samples)
    opts = [o.replace('batch_size=8', 'batch_size=32') for o in opts]
    return [sys.executable, osp.join(ROOT, 'tools', 'train.py'), CFG,
            '--work-dir', str(work_dir), *extra, '--cfg-options', *opts]


def logged_iters(log_text):
    return [int(m) for m in re.findall(r'Iter\(train\) \[\s*(\d+)/', log_text)]


def test_kill_and_resume(tmp_path):
    work = tmp_path / 'run'
    proc = subprocess.Popen(train_cmd(work), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (work / 'iter_4.pth').exists():
        assert proc.poll() is None, 'training ended before its checkpoint'
        assert time.time() < deadline, 'no checkpoint after 240 s'
        time.sleep(0.05)
    time.sleep(0.5)  # let the checkpoint file be complete
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / 'iter_12.pth').exists(), 'killed too late to test'
    first_logs = set(glob.glob(str(work / '*' / '*.log')))

    out = subprocess.run(train_cmd(work, '--resume'), env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    new_log = (set(glob.glob(str(work / '*' / '*.log'))) - first_logs).pop()
    text = open(new_log).read()
    assert 'resumed' in text.lower()
    iters = logged_iters(text)
    assert iters and min(iters) > 4 and max(iters) == 12, iters
    ckpt = torch.load(work / 'iter_12.pth', map_location='cpu')  # weights_only
    assert ckpt['meta']['iter'] == 12


def test_dist_train_two_cpu_processes(tmp_path):
    work = tmp_path / 'dist'
    opts = tiny_options(work, iters=3, ckpt_interval=3, samples=32)
    e = env()
    e.update(PYTHON=sys.executable, PORT=str(29500 + os.getpid() % 1000))
    out = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), CFG, '2',
         '--work-dir', str(work), '--cfg-options', *opts,
         ],
        env=e, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = open(glob.glob(str(work / '*' / '*.log'))[0]).read()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert max(logged_iters(log)) == 3
    assert (work / 'iter_3.pth').exists()
