"""A real single-node Slurm: tools/slurm_train.sh and the sweep's arrays,
one array cancelled with scancel mid-way and submitted again.

Runs with ``BRANCHED_MTL_SLURM=1`` as root on Debian: the fixture starts
slurmctld, slurmd and munged with the verified scripts of
``../shared/slurm/`` (or ``.ci/slurm/``), which install ``slurmctld slurmd
slurm-client munge`` from Debian when missing. Results and limits:
docs/reliability.md.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest

from reliability_helpers import (ROOT, TOOLS, nice, run_main, tiny_options,
                                 write_main_config)

CFG = osp.join(ROOT, 'configs', 'multidigits',
               'resnet18-thin_all-shared_multidigits.py')
SCRIPT_DIRS = [os.environ.get('BRANCHED_MTL_SLURM_SCRIPTS', ''),
               osp.join(osp.dirname(ROOT), 'shared', 'slurm'),
               osp.join(ROOT, '.ci', 'slurm')]


@pytest.fixture(scope='module')
def partition():
    if os.environ.get('BRANCHED_MTL_SLURM') != '1':
        pytest.skip('real Slurm: BRANCHED_MTL_SLURM=1 starts a local '
                    'cluster (root, Debian) and runs it; see '
                    'docs/reliability.md')
    if os.geteuid() != 0:
        pytest.skip('a local Slurm needs root')
    start = next((osp.join(d, 'start-local-slurm.sh') for d in SCRIPT_DIRS
                  if d and osp.isfile(osp.join(d, 'start-local-slurm.sh'))),
                 None)
    if start is None:
        pytest.skip(f'no start-local-slurm.sh in {SCRIPT_DIRS}')
    # started at the lowest priority: the jobs inherit slurmd's niceness
    out = subprocess.run(nice() + ['bash', start], capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        pytest.skip('local Slurm did not start: ' + out.stderr.strip()[-300:])
    return out.stdout.strip().splitlines()[-1]


def slurm_env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               PYTHON=sys.executable, CPUS_PER_TASK='1',
               # the node has no GPUs: Slurm accepts gpu:0 only
               SRUN_ARGS='--gres=gpu:0', SBATCH_GRES='gpu:0')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.update(extra)
    return env


def train_log(wd):
    return ''.join(open(p).read() for p in sorted(
        glob.glob(osp.join(str(wd), '2*', '*.log'))))


def test_slurm_train_two_ranks_and_resume(partition, tmp_path):
    wd = tmp_path / 'run'

    def train(iters, *extra):
        return subprocess.run(
            ['bash', osp.join(TOOLS, 'slurm_train.sh'), partition, 'tiny',
             CFG, '--work-dir', str(wd), *extra, '--cfg-options',
             *tiny_options(str(wd), iters=iters, ckpt_interval=2)],
            env=slurm_env(GPUS='2', GPUS_PER_NODE='2'), capture_output=True,
            text=True, timeout=900)

    out = train(4)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = train_log(wd)
    assert 'Distributed launcher: slurm' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert (wd / 'iter_4.pth').exists()
    out = train(6, '--resume')
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 4' in train_log(wd)
    assert (wd / 'iter_6.pth').exists()


# the single-task jobs train long enough to be cancelled half done
STAGE0 = """
iters = 40
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=5))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters)]
"""


def submit(script):
    out = subprocess.run(['bash', script], env=slurm_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return re.findall(r'submitted (\d+)', out.stdout)


def wait(predicate, what, timeout=900):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f'no {what} after {timeout} s'
        time.sleep(0.5)


def queued(ids):
    out = subprocess.run(['squeue', '-h', '-j', ','.join(ids)],
                         capture_output=True, text=True)
    return out.stdout.strip()


def starts(job_dir):
    path = osp.join(str(job_dir), 'attempts.log')
    return sum(line.startswith('start') for line in open(path)) \
        if osp.exists(path) else 0


def test_sweep_array_cancelled_and_resumed(partition, tmp_path, capsys):
    cfg = write_main_config(tmp_path, STAGE0)
    wd = tmp_path / 'sweep'
    code, err = run_main('sweep_recombination', [
        cfg, '--work-dir', wd, '--launcher', 'slurm', '--partition',
        partition, '--tasks', 'left,sum', '--splits', '1', '--mode',
        'shared-bottom', '--iters', '4', '--probe-samples', '8',
        '--gpus-per-node', '1', '--cpus-per-task', '1', '--max-parallel',
        '1', '--resume'], capsys)
    assert code == 0, err
    script = wd / 'slurm' / 'submit.sh'
    first, second = wd / 'single_task' / 'left', wd / 'single_task' / 'sum'

    ids = submit(str(script))
    assert len(ids) == 3  # stage 0 array, stage 1 array, collection
    # the array one job at a time: cancel once the first job is done and
    # the second one has a checkpoint
    wait(lambda: (first / 'done.json').exists()
         and glob.glob(str(second / 'iter_*.pth')), 'half-done array')
    subprocess.run(['scancel'] + ids, check=True)
    wait(lambda: not queued(ids), 'cancelled jobs to leave the queue', 120)
    state = subprocess.run(['scontrol', 'show', 'job', ids[0]],
                           capture_output=True, text=True).stdout
    assert 'JobState=CANCELLED' in state, state
    assert not (second / 'done.json').exists()
    assert not (wd / 'affinity_tournament.json').exists()

    # the same submission again: done jobs exit at once, the cancelled one
    # resumes from its checkpoint, then stage 1 and the collection run
    ids = submit(str(script))
    wait(lambda: (wd / 'affinity_tournament.json').exists()
         and not queued(ids), 'tournament affinity')
    assert starts(first) == 1  # not redone
    assert starts(second) == 2
    assert 'resumed epoch: 0, iter:' in open(second / 'train.log').read()
    for job in glob.glob(str(wd / 'jobs' / '*')):
        assert starts(job) == 1 and osp.exists(osp.join(job, 'done.json'))
    from branched_mtl.affinity import load_affinity
    doc = load_affinity(str(wd / 'affinity_tournament.json'))
    assert doc['tasks'] == ['left', 'sum'] and doc['method'] == 'tournament'
