"""What a work dir means does not depend on where it lies or who reads it,
and a plain install works.

* a finished sweep reached by another path (copied, or through a link) is
  reused: before, the work dir's path was part of each job's config digest
  and the sweep refused its own finished jobs;
* files get the mode the umask gives: before, everything written through
  ``mkstemp`` (checkpoints, reports, stage records) was 0600;
* ``mmseg::``, ``mmpretrain::`` and ``branched_mtl::`` config bases load
  without ``pkg_resources`` (setuptools >= 81, Python 3.12 venvs);
* the Slurm GPU request follows the GPUs asked for (none on CPU nodes);
* an affinity file that is not symmetric is refused when it is loaded.
"""
import json
import os
import os.path as osp
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from reliability_helpers import TOOLS, env, write_main_config


def _plan(cfg_path, wd, **kwargs):
    from branched_mtl.apis.sweep import load_plan_config, plan_sweep
    return plan_sweep(load_plan_config(cfg_path), str(wd), tasks='left,sum',
                      splits='1', mode='shared-bottom', iters=2,
                      probe_samples=8, **kwargs)


@pytest.mark.parametrize('how', ['copied', 'linked'])
def test_finished_sweep_reached_by_another_path_is_reused(tmp_path, how):
    from branched_mtl.apis.sweep import write_jobs
    cfg = write_main_config(tmp_path)
    first = _plan(cfg, tmp_path / 'a')
    write_jobs(first, 'none')
    for job in first.jobs:  # as the worker marks a finished job
        os.makedirs(osp.join(job.job_dir, 'affinity_probe'))
        with open(osp.join(job.job_dir, 'affinity_probe', 'meta.json'),
                  'w') as f:
            json.dump({}, f)
        with open(job.done_path, 'w') as f:
            json.dump(dict(job=job.name), f)
    other = tmp_path / 'b'
    if how == 'copied':
        shutil.copytree(tmp_path / 'a', other)
    else:
        os.symlink(tmp_path / 'a', other)
    moved = _plan(cfg, other)
    write_jobs(moved, 'none')  # before: "run with another config"
    assert all(job.is_done() for job in moved.jobs)
    # a real change of config is still refused
    from branched_mtl.apis.sweep import load_plan_config, plan_sweep
    changed = plan_sweep(load_plan_config(cfg, {'randomness.seed': 3}),
                         str(other), tasks='left,sum', splits='1',
                         mode='shared-bottom', iters=2, probe_samples=8)
    with pytest.raises(ValueError, match='another config'):
        write_jobs(changed, 'none')


def test_files_get_the_mode_the_umask_gives(tmp_path):
    from branched_mtl.pipeline import StageBook
    from branched_mtl.utils import WorkDirLock
    from branched_mtl.utils.checkpoints import atomic_save_checkpoint
    from branched_mtl.utils.io import dump_json_atomic, write_text_atomic
    old = os.umask(0o027)
    try:
        write_text_atomic('# report\n', str(tmp_path / 'report.md'))
        dump_json_atomic({}, str(tmp_path / 'a.json'))
        atomic_save_checkpoint(dict(meta={}), str(tmp_path / 'iter_2.pth'))
        StageBook(str(tmp_path)).finish('single_task/left', 'fp', {})
        with WorkDirLock(str(tmp_path / 'wd'), 'test'):
            pass
    finally:
        os.umask(old)
    for path in ('report.md', 'a.json', 'iter_2.pth',
                 'stages/single_task__left.json', 'wd/.workdir.lock'):
        mode = stat.S_IMODE(os.stat(tmp_path / path).st_mode)
        assert mode == 0o640, f'{path}: {oct(mode)}'


BASES = {
    'branched_mtl': 'branched_mtl::multidigits/branch_multidigits.py',
    'mmseg': 'mmseg::_base_/schedules/schedule_20k.py',
    'mmpretrain': 'mmpretrain::_base_/schedules/imagenet_bs256.py',
}


def test_package_config_bases_load_without_pkg_resources(tmp_path):
    """As after a plain ``pip install .`` with setuptools >= 81, or in a
    Python 3.12 venv: ``import pkg_resources`` fails."""
    paths = []
    for name, base in BASES.items():
        path = tmp_path / f'{name}.py'
        path.write_text(f'_base_ = [{base!r}]\n')
        paths.append(str(path))
    code = (
        'import sys\n'
        "sys.modules['pkg_resources'] = None  # no setuptools < 81\n"
        'import branched_mtl\n'
        'from mmengine.config import Config\n'
        'for path in sys.argv[1:]:\n'
        '    cfg = Config.fromfile(path)\n'
        "    print(path, sorted(cfg.keys())[:3])\n")
    out = subprocess.run([sys.executable, '-c', code] + paths, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'pkg_resources' not in out.stderr
    assert len(out.stdout.strip().splitlines()) == 3, out.stdout


def test_package_path_comes_from_the_imported_package():
    import branched_mtl
    from branched_mtl.compat import get_installed_path, is_installed
    assert get_installed_path('branched_mtl') == osp.dirname(
        branched_mtl.__file__)
    assert get_installed_path('mmsegmentation').endswith('mmseg')
    assert is_installed('mmpretrain') and not is_installed('no_such_pkg_x')


def test_sweep_sbatch_asks_for_the_gpus_given(tmp_path):
    from branched_mtl.apis.sweep import write_slurm
    cfg = write_main_config(tmp_path)
    plan = _plan(cfg, tmp_path / 'gpu')
    write_slurm(plan, 'p', gpus_per_job=2, gpus_per_node=8)
    text = open(osp.join(plan.work_dir, 'slurm', 'stage1.sbatch')).read()
    assert '#SBATCH --gres=gpu:2\n' in text and '--ntasks-per-node=2' in text
    plan = _plan(cfg, tmp_path / 'cpu')
    write_slurm(plan, 'p', gpus_per_job=2, gpus_per_node=0)
    for stage in (0, 1):
        text = open(osp.join(plan.work_dir, 'slurm',
                             f'stage{stage}.sbatch')).read()
        assert '--gres' not in text and '--ntasks-per-node=2' in text


def test_slurm_train_asks_for_the_gpus_given(tmp_path):
    fake = tmp_path / 'bin'
    fake.mkdir()
    (fake / 'srun').write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; '
                               'done\n')
    (fake / 'srun').chmod(0o755)
    for per_node, expected in (
            ('2', ['--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2']),
            ('0', ['--ntasks=2', '--ntasks-per-node=2'])):  # CPU nodes
        e = dict(env(), PATH=f'{fake}:{os.environ["PATH"]}', GPUS='2',
                 GPUS_PER_NODE=per_node)
        out = subprocess.run(['bash', osp.join(TOOLS, 'slurm_train.sh'),
                              'p', 'j', 'cfg.py'], env=e, capture_output=True,
                             text=True, timeout=60)
        args = out.stdout.split('\n')
        assert [a for a in args if a.startswith(('--gres', '--ntasks'))] \
            == expected, out.stdout + out.stderr


def test_asymmetric_affinity_is_refused_on_load(tmp_path):
    from branched_mtl.affinity import load_affinity
    aff = np.full((2, 3, 3), 0.5)
    aff[1, 0, 2] = 0.9
    path = tmp_path / 'affinity.json'
    path.write_text(json.dumps(dict(
        tasks=['a', 'b', 'c'], layers=['l1', 'l2'], method='rsa',
        affinity=aff.tolist(), meta={})))
    with pytest.raises(ValueError, match=r"not symmetric: at block 'l2', "
                       r"tasks 'a' / 'c'.* it is 0.9 but 0.5"):
        load_affinity(str(path))

