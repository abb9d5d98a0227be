"""A plain ``pip install .`` into a fresh venv (no requirements.txt, a
setuptools without ``pkg_resources``), then a config of the user's own whose
base is ``branched_mtl::``, read from outside the checkout. Costs a torch
install (minutes, GBs): runs with BRANCHED_MTL_SLOW=1."""
import os.path as osp
import subprocess
import sys

from reliability_helpers import slow

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@slow
def test_plain_pip_install_reads_package_bases(tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    py = str(venv / 'bin' / 'python')
    pip = [py, '-m', 'pip', 'install', '-q']
    subprocess.run(pip + ['--upgrade', 'pip', 'setuptools>=81'], check=True)
    subprocess.run(pip + [ROOT], check=True)
    no_pkg = subprocess.run([py, '-c', 'import pkg_resources'],
                            capture_output=True)
    assert no_pkg.returncode != 0  # the case the fix is for
    (tmp_path / 'my_config.py').write_text(
        "_base_ = 'branched_mtl::multidigits/branch_multidigits.py'\n")
    out = subprocess.run(
        [py, '-c', 'import branched_mtl; from mmengine.config import Config;'
         " c = Config.fromfile('my_config.py');"
         ' print(c.model.type, len(c.model.encoder.tasks))'],
        cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'BranchedMultiTaskModel 5' in out.stdout
