"""kill -9 of ``compare_methods.py`` while a method's model trains, then
the same command: every model finished before the kill is kept (its
record and checkpoints untouched), the interrupted ones run again to their
end, and nothing is trained twice, with one model at a time and with two
(about 25 s each); and (slow suite) a kill at every model in turn."""
import glob
import json
import os
import os.path as osp
import signal
import time

import pytest

from reliability_helpers import ROOT, popen, run, slow, write_main_config
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


def _fresh_checkpoint(work, killed):
    """The folder of a model that has written its first checkpoint and was
    not killed yet, or None."""
    for path in glob.glob(osp.join(work, '**', 'iter_2.pth'),
                          recursive=True):
        folder = osp.dirname(path)
        if folder not in killed:
            return folder
    return None


@slow
def test_kill_9_at_every_model_then_rerun(tmp_path):
    """A chain of kills: each run of the command is killed at the first
    checkpoint of the next model not killed yet, until a run ends by
    itself. Every model (single-task, all-shared, the TAG run, the RSA and
    TAG trees, their random trees) is interrupted once; after each kill
    nothing finished before it is changed, and the comparison ends with
    every model trained to its end once."""
    cfg = write_main_config(tmp_path, SCHEDULE)
    work = str(tmp_path / 'cmp')
    argv = [TOOL, cfg, '--work-dir', work, '--budget', '70%', '--methods',
            'all_shared,rsa,tag', '--random-trees', '1']
    killed = []
    kept, records = {}, {}
    log = tmp_path / 'run.log'
    for _ in range(30):
        proc = popen(argv, stdout=open(log, 'w'))
        folder = None
        deadline = time.time() + 600
        while proc.poll() is None:
            folder = _fresh_checkpoint(work, killed)
            if folder:
                break
            assert time.time() < deadline, 'no new model in time'
            time.sleep(0.05)
        if folder is None:
            break  # the run ended by itself
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed.append(folder)
        # whatever was finished before this kill is as it was
        now, ckpts = _records(work), _checkpoints(work)
        for path, text in records.items():
            assert now[path] == text, f'{path} rewritten (kill {len(killed)})'
        for path, mtime in kept.items():
            assert ckpts.get(path) == mtime, \
                f'{path} rewritten (kill {len(killed)})'
        records = now
        kept = {p: t for p, t in ckpts.items()
                if osp.dirname(p) != folder}
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert osp.isfile(osp.join(work, 'comparison.json'))
    # every model was killed once, and each ran to its end
    models = {osp.dirname(p) for p in glob.glob(
        osp.join(work, '**', 'iter_8.pth'), recursive=True)}
    assert models and models == set(killed)
    assert len(killed) >= 7  # 3 single-task, all-shared, 2 trees, ...
    for path in glob.glob(osp.join(work, '**', 'stages', '*.json'),
                          recursive=True):
        rec = json.load(open(path)).get('result') or {}
        if 'curve' in rec:
            assert [int(s) for s, _ in rec['curve']][-1] == 8, path
    doc = json.load(open(osp.join(work, 'comparison.json')))
    for method in ('rsa', 'tag'):
        assert doc['per_seed']['0'][method]['status'] == 'done', method
