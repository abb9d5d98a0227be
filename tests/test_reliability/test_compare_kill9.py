"""kill -9 of ``compare_methods.py`` while a method's model trains, then
the same command: every model finished before the kill is kept (its
record and checkpoints untouched), the interrupted ones run again to their
end, and nothing is trained twice, with one model at a time and with two
(about 25 s each)."""
import glob
import json
import os
import os.path as osp
import signal
import time

import pytest

from reliability_helpers import ROOT, popen, run, write_main_config
from test_kill9 import SCHEDULE as KILL9_SCHEDULE

TOOL = osp.join(ROOT, 'tools', 'analysis', 'compare_methods.py')
# test_kill9's schedule (a checkpoint every 2 of 8 iterations: the kill
# lands in a training) and a small probe
SCHEDULE = KILL9_SCHEDULE + """
branch = dict(probe=dict(dataset='val', num_samples=8))
"""


def _checkpoints(work):
    return {p: os.stat(p).st_mtime_ns for p in glob.glob(
        osp.join(work, '**', '*.pth'), recursive=True)}


def _records(work):
    return {p: open(p).read() for p in glob.glob(
        osp.join(work, '**', 'stages', '*.json'), recursive=True)}


@pytest.mark.parametrize('parallel,killed', [
    (1, 'branched'),
    # two at a time: the tree and its random tree train ahead in their own
    # processes, which die with the comparison; the kill lands while the
    # random tree trains
    (2, 'random/0')])
def test_kill_9_during_a_method_then_rerun(tmp_path, parallel, killed):
    cfg = write_main_config(tmp_path, SCHEDULE)
    work = str(tmp_path / 'cmp')
    argv = [TOOL, cfg, '--work-dir', work, '--budget', '70%', '--methods',
            'all_shared,rsa', '--random-trees', '1',
            '--cfg-options', f'branch.max_parallel={parallel}']
    proc = popen(argv)
    # a checkpoint of an RSA model: the references are done
    target = osp.join(work, 'seed_0', 'rsa', killed, 'iter_2.pth')
    deadline = time.time() + 600
    while not osp.exists(target):
        assert proc.poll() is None, 'the comparison ended before the kill'
        assert time.time() < deadline, 'no RSA tree checkpoint in time'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _records(work)
    # the RSA models may have been under way: only the rest is finished
    kept = {p: t for p, t in _checkpoints(work).items()
            if '/rsa/branched/' not in p and '/rsa/random/' not in p}
    assert any('all_shared' in p for p in done_before)
    assert not osp.exists(osp.join(work, 'comparison.json'))

    out = run(argv, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # nothing finished before the kill was trained or recorded again
    after = _records(work)
    for path, text in done_before.items():
        assert after[path] == text, path
    now = _checkpoints(work)
    for path, mtime in kept.items():
        assert now.get(path) == mtime, path
    assert 'done earlier, skipped' in out.stdout
    doc = json.load(open(osp.join(work, 'comparison.json')))
    seed = doc['per_seed']['0']
    assert seed['rsa']['status'] == 'done'
    assert set(seed['rsa']['models']) == {'tree', 'random/0'}
    # the interrupted models trained to their end, once
    for name in ('branched', 'random__0'):
        rec = json.load(open(osp.join(work, 'seed_0', 'rsa', 'stages',
                                      f'{name}.json')))['result']
        assert [int(s) for s, _ in rec['curve']][-1] == 8, name
