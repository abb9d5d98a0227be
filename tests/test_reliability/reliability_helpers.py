"""Shared by the fault-injection tests: tiny configs, tools run in-process
or as subprocesses, and snapshots of what a work dir has finished.

``slow`` tests (more kill seeds, comparisons with an uninterrupted run) run
with ``BRANCHED_MTL_SLOW=1``; the real-Slurm tests with
``BRANCHED_MTL_SLURM=1`` (root, Debian; see docs/reliability.md). ``make
test`` runs neither by default so that it stays well under 10 minutes.
"""
import glob
import hashlib
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
CONFIGS = osp.join(ROOT, 'configs', 'multidigits')


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slow = pytest.mark.skipif(
    os.environ.get('BRANCHED_MTL_SLOW') != '1',
    reason='slow fault-injection run; BRANCHED_MTL_SLOW=1 runs it')

# tiny_options() of tests/conftest.py (loaded by path: a second module
# named conftest would be ambiguous)
_root_conftest = _load(osp.join(ROOT, 'tests', 'conftest.py'),
                       'reliability_root_conftest')
tiny_options = _root_conftest.tiny_options
one_thread_after_fork = _root_conftest.one_thread_after_fork

# the tiny 3-task main job of tests/test_pipeline/test_branch.py
_branch_tests = _load(osp.join(ROOT, 'tests', 'test_pipeline',
                               'test_branch.py'), 'reliability_branch_tests')
TINY, THREE = _branch_tests.TINY, _branch_tests.THREE


def write_main_config(folder, extra: str = '', name: str = 'tiny.py') -> str:
    """A tiny 3-task main-job config (left, left_parity, sum)."""
    path = osp.join(str(folder), name)
    with open(path, 'w') as f:
        f.write(TINY + THREE + extra)
    return path


def tool(name: str):
    """``tools/<name>.py`` as a module (its ``main`` runs in-process)."""
    path = osp.join(TOOLS, f'{name}.py')
    if not osp.isfile(path):
        path = osp.join(TOOLS, 'analysis', f'{name}.py')
    return _load(path, f'reliability_tool_{name}')


def run_main(name: str, argv: List[str], capsys) -> Tuple[int, str]:
    """Run a tool's ``main`` in-process; its exit status and stderr.

    A user error must end in an exit status, never in an exception: any
    exception escapes to the test (that is the traceback a user would see).
    """
    module = tool(name)
    old_argv = sys.argv
    sys.argv = [f'{name}.py'] + [str(a) for a in argv]
    try:
        code = module.main()  # parses sys.argv, as from the shell
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old_argv
    err = capsys.readouterr().err
    if isinstance(code, str):  # sys.exit('message')
        err, code = err + code, 1
    return (0 if code is None else code), err


def env() -> Dict[str, str]:
    e = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    e['PYTHONPATH'] = ROOT + os.pathsep + e.get('PYTHONPATH', '')
    return e


def nice() -> List[str]:
    """Child processes yield the CPU to anything else on the machine."""
    return ['nice', '-n', '19'] if os.nice(0) < 19 else []


def popen(argv: List[str], **kwargs) -> subprocess.Popen:
    kwargs.setdefault('stdout', subprocess.DEVNULL)
    kwargs.setdefault('stderr', subprocess.STDOUT)
    return subprocess.Popen(nice() + [sys.executable] + argv, env=env(),
                            **kwargs)


def run(argv: List[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(nice() + [sys.executable] + argv, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def finished_stages(work_dir: str) -> Dict[str, str]:
    """``{stage record: digest}`` of the stages a main job finished."""
    return {osp.basename(p): digest(p) for p in glob.glob(
        osp.join(str(work_dir), 'stages', '*.json'))}


def run_dirs(folder: str) -> List[str]:
    """mmengine's per-run timestamp folders in a training work dir."""
    return sorted(d for d in glob.glob(osp.join(str(folder), '2*'))
                  if osp.isdir(d))


def stage_folder(work_dir: str, record: str) -> Optional[str]:
    """The training folder of a stage record (None for non-training
    stages)."""
    name = record[:-len('.json')].replace('__', '/')
    if name in ('affinity', 'tree', 'report'):
        return None
    return osp.join(str(work_dir), name)
