"""A regular (not editable) install of the package, used from outside the
checkout: the main job with the tournament affinity, whose sweep finds its
tools in the installed ``.mim/tools``. One minute (an install and a tiny
tournament): runs with BRANCHED_MTL_SLOW=1."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

from conftest import ROOT, slow

TOURNAMENT = """
branch = dict(random_trees=1, probe=dict(dataset='val', num_samples=8),
              sweep=dict(mode='shared-bottom', iters=2))
"""


def _tiny_config() -> str:
    """The tiny 3-task main job of tests/test_pipeline/test_branch.py on
    the installed package's base config."""
    src = open(osp.join(ROOT, 'tests', 'test_pipeline',
                        'test_branch.py')).read()
    tiny = re.search(r'TINY = f"""(.*?)"""', src, re.S).group(1)
    three = re.search(r'THREE = """(.*?)"""', src, re.S).group(1)
    tiny = tiny.replace(
        '_base_ = [{BASE!r}]',
        "_base_ = ['branched_mtl::multidigits/branch_multidigits.py']")
    return tiny + three + TOURNAMENT


@slow
def test_regular_install_runs_the_tournament_outside_the_checkout(tmp_path):
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                    '--no-build-isolation', '--target', str(site), ROOT],
                   check=True)
    installed = site / 'branched_mtl'
    assert (installed / '.mim' / 'tools' / 'branch.py').is_file()
    assert not (installed / '.mim' / 'tools').is_symlink()  # copies
    user = tmp_path / 'user'
    user.mkdir()
    (user / 'tiny.py').write_text(_tiny_config())
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, str(installed / '.mim' / 'tools' / 'branch.py'),
         'tiny.py', '--work-dir', 'wd', '--affinity', 'tournament',
         '--budget', '70%'], cwd=user, env=env, capture_output=True,
        text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(user / 'wd' / 'affinity' / 'affinity.json') as f:
        doc = json.load(f)
    assert doc['method'] == 'tournament'
    # every recombined run was trained by the installed package's tools
    runs = list((user / 'wd' / 'affinity' / 'sweep' / 'jobs').glob(
        '*/run.sh'))
    assert len(runs) == 15
    for run in runs:
        text = run.read_text()
        assert str(installed / '.mim' / 'tools' / 'train.py') in text
        assert osp.join(ROOT, 'tools') not in text
    assert (user / 'wd' / 'report.md').is_file()
