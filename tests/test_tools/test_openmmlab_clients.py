"""Our configs and tools through the clients OpenMMLab users already have.

mim (``train``, ``test``, ``run``, ``search``), mmsegmentation's and
mmpretrain's own tools/train.py and tools/test.py as their packages ship
them, and ``branched_mtl::`` config bases: each runs a few iterations of
MultiDigits from a temporary directory outside the checkout, on the package
as installed (``make test`` installs it with ``pip install -e .``; one test
builds a regular wheel too).

Every client starts Python processes that import torch and the OpenMMLab
stack (seconds each), so the independent runs go two at a time in one
module fixture and the tests check their results.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

import mmpretrain
import mmseg
import pytest
import yaml
from conftest import ROOT, slow, tiny_options
from mmengine.config import Config

import branched_mtl
from branched_mtl.utils.console import KNOWN_NOTICES
from branched_mtl.utils.package import MIM_DIR

CONFIG_NAME = 'resnet18-thin_branched-example_multidigits.py'
# the installed copy, as a user of the package has it
CONFIG = osp.join(MIM_DIR, 'configs', 'multidigits', CONFIG_NAME)
USER_CONFIG = ("_base_ = 'branched_mtl::multidigits/"
               f"{CONFIG_NAME}'\n")
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']
LAYERS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
MIM = [sys.executable, '-m', 'mim']
ITERS = 2

Step = Tuple[str, List[str]]


def stock_tool(package, name: str) -> str:
    """tools/<name>.py as an OpenMMLab package ships it in ``.mim``."""
    return osp.join(osp.dirname(package.__file__), '.mim', 'tools', name)


def opts(work_dir: str) -> List[str]:
    return ['--cfg-options', *tiny_options(work_dir, iters=ITERS,
                                           ckpt_interval=ITERS, samples=16)]


def run_steps(steps: List[Step], cwd: str, env: dict) -> Dict[str, object]:
    """Run ``steps`` in order; stop at the first that fails."""
    done = {}
    for name, args in steps:
        start = time.time()
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        # wall seconds, in the failure message and timings.json
        proc.seconds = round(time.time() - start, 1)
        done[name] = proc
        if proc.returncode != 0:
            break
    return done


def check(done: Dict[str, object], name: str) -> str:
    """The step's output; fails with its tail when it did not succeed."""
    assert name in done, f'{name} did not run (an earlier step failed)'
    proc = done[name]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f'{name} failed after {proc.seconds} s:\n{out[-4000:]}')
    return out


def write_affinity(path: str) -> None:
    """Digits with their parities, the sum apart; less related deeper."""
    family = dict(left=0, left_parity=0, right=1, right_parity=1, sum=2)
    affinity = [[[1.0 if i == j else
                  (0.9 if family[a] == family[b] else 0.6) - 0.1 * layer
                  for j, b in enumerate(TASKS)] for i, a in enumerate(TASKS)]
                for layer in range(len(LAYERS))]
    with open(path, 'w') as f:
        json.dump(dict(tasks=TASKS, layers=LAYERS, method='rsa',
                       affinity=affinity, meta={}), f)


def copy_source(dst: str) -> str:
    """What an sdist carries (MANIFEST.in), without the install's .mim."""
    ignore = shutil.ignore_patterns('.mim', '__pycache__', '*.pyc')
    os.makedirs(dst)
    for item in ('setup.py', 'MANIFEST.in', 'README.md', 'requirements.txt',
                 'model-index.yml'):
        shutil.copy(osp.join(ROOT, item), dst)
    for item in ('branched_mtl', 'configs', 'tools'):
        shutil.copytree(osp.join(ROOT, item), osp.join(dst, item),
                        ignore=ignore)
    return dst


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> Dict[str, Dict[str, object]]:
    work = str(tmp_path_factory.mktemp('clients'))  # outside the checkout
    assert not osp.realpath(work).startswith(osp.realpath(ROOT) + os.sep)
    with open(osp.join(work, 'my_config.py'), 'w') as f:
        f.write(USER_CONFIG)
    write_affinity(osp.join(work, 'affinity.json'))
    # Slurm is not here: a stand-in srun records what mim asks it to run
    bin_dir = osp.join(work, 'bin')
    os.makedirs(bin_dir)
    with open(osp.join(bin_dir, 'srun'), 'w') as f:
        f.write('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    os.chmod(osp.join(bin_dir, 'srun'), 0o755)
    env = dict(os.environ, OMP_NUM_THREADS='1',
               SRUN_LOG=osp.join(work, 'srun.log'),
               PATH=bin_dir + os.pathsep + os.environ.get('PATH', ''))
    env.pop('PYTHONPATH', None)  # the installed package, not the checkout

    def wd(name: str) -> str:
        return osp.join(work, name)

    chains: Dict[str, List[Step]] = {
        'mim': [
            ('train', [*MIM, 'train', 'branched_mtl', CONFIG_NAME,
                       '--work-dir', wd('mim'), *opts(wd('mim'))]),
            # a config of the user's own on ours, and the checkpoint
            ('test', [*MIM, 'test', 'branched_mtl', 'my_config.py',
                      '--checkpoint', osp.join('mim', f'iter_{ITERS}.pth'),
                      '--work-dir', wd('mim_test'), *opts(wd('mim_test'))]),
        ],
        'mmpretrain': [
            ('train', [sys.executable, stock_tool(mmpretrain, 'train.py'),
                       CONFIG, '--work-dir', wd('mmpretrain'),
                       *opts(wd('mmpretrain'))]),
            ('test', [sys.executable, stock_tool(mmpretrain, 'test.py'),
                      CONFIG, wd(f'mmpretrain/iter_{ITERS}.pth'),
                      '--work-dir', wd('mmpretrain_test'),
                      *opts(wd('mmpretrain_test'))]),
        ],
        'mmseg': [
            ('train', [sys.executable, stock_tool(mmseg, 'train.py'), CONFIG,
                       '--work-dir', wd('mmseg'), *opts(wd('mmseg'))]),
            ('test', [sys.executable, stock_tool(mmseg, 'test.py'), CONFIG,
                      wd(f'mmseg/iter_{ITERS}.pth'), '--work-dir',
                      wd('mmseg_test'), *opts(wd('mmseg_test'))]),
            # what the README tells users of other tools for branched_mtl::
            ('launcher', [sys.executable, '-m', 'branched_mtl',
                          stock_tool(mmseg, 'test.py'), 'my_config.py',
                          wd(f'mmseg/iter_{ITERS}.pth'), '--work-dir',
                          wd('mmseg_user'), *opts(wd('mmseg_user'))]),
        ],
        'mim_run': [
            ('build_tree', [*MIM, 'run', 'branched_mtl', 'build_tree',
                            'affinity.json', CONFIG, '--alpha', '0.05',
                            '--out', 'tree.py', '--no-draw']),
            # the whole job is too long for a test: no --alpha/--budget,
            # which our tool refuses after mim found and started it
            ('branch', [*MIM, 'run', 'branched_mtl', 'branch', CONFIG,
                        '--work-dir', wd('branch')]),
        ],
        'mim_dist': [
            ('train', [*MIM, 'train', 'branched_mtl', CONFIG_NAME, '--gpus',
                       '2', '--launcher', 'pytorch', '--work-dir',
                       wd('mim_dist'), *opts(wd('mim_dist'))]),
        ],
        'light': [
            ('search', [*MIM, 'search', 'branched_mtl']),
            ('slurm', [*MIM, 'train', 'branched_mtl', CONFIG_NAME, '--gpus',
                       '2', '--gpus-per-node', '2', '--partition', 'gpu',
                       '--launcher', 'slurm', '--work-dir', wd('slurm')]),
            ('wheel', [sys.executable, '-m', 'pip', 'wheel', '-q',
                       '--no-deps', '--no-build-isolation', '-w',
                       wd('dist'), copy_source(wd('src'))]),
            ('install', [sys.executable, '-m', 'pip', 'install', '-q',
                         '--no-deps', '--no-index', '--find-links',
                         wd('dist'), '--target', wd('site'), 'branched_mtl']),
            # mim on that regular install (first on the path)
            ('installed', ['env', f'PYTHONPATH={wd("site")}',
                           f'SRUN_LOG={wd("srun_installed.log")}', *MIM,
                           'train', 'branched_mtl', CONFIG_NAME, '--gpus',
                           '1', '--gpus-per-node', '1', '--partition', 'gpu',
                           '--launcher', 'slurm']),
        ],
    }
    # longest first; two at a time for the two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_steps, steps, work, env)
                   for name, steps in chains.items()}
        done = {name: future.result() for name, future in futures.items()}
    with open(osp.join(work, 'timings.json'), 'w') as f:
        json.dump({f'{chain}/{step}': proc.seconds
                   for chain, steps in done.items()
                   for step, proc in steps.items()}, f, indent=1)
    done['work'] = work
    return done


def logged_iters(text: str) -> List[int]:
    return [int(m) for m in re.findall(r'Iter\(train\) \[\s*(\d+)/', text)]


def test_mim_locates_the_installed_package():
    from mim.utils import get_installed_path as mim_path
    from mmengine.utils import get_installed_path as mmengine_path
    package = osp.dirname(osp.abspath(branched_mtl.__file__))
    assert osp.realpath(mim_path('branched_mtl')) == osp.realpath(package)
    assert osp.realpath(mmengine_path('branched_mtl')) == osp.realpath(
        package)
    for item in ('configs', 'tools', 'model-index.yml'):
        assert osp.exists(osp.join(package, '.mim', item)), (
            f'.mim/{item} missing: reinstall (pip install -e .)')
    if osp.realpath(package).startswith(osp.realpath(ROOT) + os.sep):
        # editable: links to the checkout, so edits show at once
        assert osp.samefile(osp.join(package, '.mim', 'tools'),
                            osp.join(ROOT, 'tools'))


@slow
def test_mim_train_and_test(runs):
    out = check(runs['mim'], 'train')
    assert 'find the config file in codebase branched_mtl' in out
    assert osp.join(MIM_DIR, 'tools', 'train.py') in out
    assert max(logged_iters(out)) == ITERS
    assert osp.isfile(osp.join(runs['work'], 'mim', f'iter_{ITERS}.pth'))
    # our tools leave the known harmless notices out of the console ...
    assert not [n for n in KNOWN_NOTICES if n in out]
    # ... and in the log file in the work dir
    log = next(f for f in _files(osp.join(runs['work'], 'mim'), '.log'))
    assert '"FileClient" will be deprecated' in open(log).read()

    out = check(runs['mim'], 'test')
    assert osp.join(MIM_DIR, 'tools', 'test.py') in out
    assert 'Iter(test)' in out and 'sum/accuracy/top1' in out


@slow
def test_mim_train_distributed(runs):
    out = check(runs['mim_dist'], 'train')
    assert '--nproc_per_node=2' in out
    log = open(next(_files(osp.join(runs['work'], 'mim_dist'),
                           '.log'))).read()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert max(logged_iters(log)) == ITERS


@slow
def test_mim_train_slurm_command(runs):
    check(runs['light'], 'slurm')
    srun = open(osp.join(runs['work'], 'srun.log')).read().split('\n')
    assert {'-p', 'gpu', '--ntasks=2', '--ntasks-per-node=2'} <= set(srun)
    assert osp.join(MIM_DIR, 'tools', 'train.py') in srun
    assert srun[srun.index('--launcher') + 1] == 'slurm'


@slow
def test_mim_run_build_tree_and_branch(runs):
    out = check(runs['mim_run'], 'build_tree')
    assert osp.join(MIM_DIR, 'tools', 'build_tree.py') in out
    tree = Config.fromfile(osp.join(runs['work'], 'tree.py'))
    assert len(tree.model.encoder.branches) == len(LAYERS)
    proc = runs['mim_run']['branch']
    out = proc.stdout + proc.stderr
    assert ('Use the script ' + osp.join(MIM_DIR, 'tools', 'branch.py')
            in out), out[-3000:]
    assert 'usage: branch.py' in out and '--budget' in out, out[-3000:]


@slow
def test_mim_search_lists_every_config(runs):
    out = check(runs['light'], 'search')
    for model in _metafile_models():
        assert f'config id: {model["Name"]}' in out


@pytest.mark.parametrize('package', ['mmseg', 'mmpretrain'])
@slow
def test_stock_train_and_test_tools(runs, package):
    out = check(runs[package], 'train')
    assert max(logged_iters(out)) == ITERS
    out = check(runs[package], 'test')
    assert 'Iter(test)' in out and 'sum/accuracy/top1' in out


@slow
def test_stock_tool_on_package_base_through_launcher(runs):
    # mmseg's test.py on a config of the user's on branched_mtl:: bases
    out = check(runs['mmseg'], 'launcher')
    assert 'Iter(test)' in out and 'sum/accuracy/top1' in out


def test_config_base_from_installed_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'mine.py').write_text(
        "_base_ = 'branched_mtl::multidigits/branch_multidigits.py'\n"
        'train_cfg = dict(max_iters=7)\n')
    cfg = Config.fromfile('mine.py')
    assert cfg.model.type == 'BranchedMultiTaskModel'
    assert cfg.model.encoder.tasks == TASKS
    assert cfg.train_cfg.max_iters == 7
    assert cfg.branch.random_trees == 3  # from the package's config


@slow
def test_regular_install_carries_mim_files(runs):
    check(runs['light'], 'wheel')
    wheel = next(_files(osp.join(runs['work'], 'dist'), '.whl'))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        top_level = z.read(
            f'branched_mtl-{branched_mtl.__version__}.dist-info/top_level.txt')
    mim = 'branched_mtl/.mim/'
    assert {mim + 'tools/train.py', mim + 'tools/test.py',
            mim + 'tools/branch.py', mim + 'tools/dist_train.sh',
            mim + 'model-index.yml',
            mim + 'configs/multidigits/' + CONFIG_NAME,
            mim + 'configs/_base_/datasets/multidigits.py'} <= names
    for meta in _index()['Import']:
        assert mim + meta in names
    assert not [n for n in names if '__pycache__' in n]
    assert top_level == b'branched_mtl\n'  # only editable wheels name a path

    # installed from it, mim runs the copies in site-packages
    check(runs['light'], 'installed')
    site_mim = osp.join(runs['work'], 'site', 'branched_mtl', '.mim')
    srun = open(osp.join(runs['work'], 'srun_installed.log')).read()
    assert osp.join(site_mim, 'tools', 'train.py') in srun.split('\n')
    assert osp.join(site_mim, 'configs', 'multidigits', CONFIG_NAME) in srun


def test_metafiles_list_every_config():
    models = _metafile_models()
    names = [m['Name'] for m in models]
    assert len(names) == len(set(names))
    listed = set()
    for model in models:
        assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
        assert model['In Collection'] in {
            c['Name'] for c in _index()['Collections']}
        listed.add(model['Config'])
    ours = {osp.relpath(p, ROOT) for p in _files(
        osp.join(ROOT, 'configs'), '.py') if '_base_' not in p}
    assert ours - listed == set(), 'configs missing from a metafile.yml'


def _files(folder: str, suffix: str):
    for path, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.endswith(suffix):
                yield osp.join(path, name)


def _index() -> dict:
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        return yaml.safe_load(f)


def _metafile_models() -> List[dict]:
    models = []
    for meta in _index()['Import']:
        with open(osp.join(ROOT, meta)) as f:
            models += yaml.safe_load(f)['Models']
    return models
