"""A resumed stage or sweep job is the run that was asked for.

A stage or job killed mid-training has checkpoints but no completion
record. Rerun with the same inputs, it resumes; rerun with another seed
(or config, or options), it must start again from scratch: before, the
seed-1 rerun resumed the seed-0 checkpoint and recorded the seed-1
fingerprint over a curve whose first points were seed 0's.

The kills are real (``kill -9`` of ``tools/branch.py`` and of a sweep
worker once a training wrote its first checkpoint); the reruns run
in-process up to the point where training would start, where the decision
(resume or not, what the work dir then holds) is checked.
"""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import time

import pytest
from mmengine.config import Config

from reliability_helpers import TOOLS, popen, write_main_config

# long enough that the kill finds the first model half trained
LONG = """
iters = 400
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=2))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0,
                        end=iters, eta_min=1e-5)]
"""


class Stop(Exception):
    """Raised instead of training: the decision is what is checked."""


def kill_after_checkpoint(argv, folder, timeout=240):
    """Start ``argv``, wait for ``folder/iter_2.pth``, ``kill -9`` it."""
    proc = popen(argv)
    deadline = time.time() + timeout
    try:
        while not glob.glob(osp.join(str(folder), 'iter_*.pth')):
            assert proc.poll() is None, f'{argv[0]} ended before a checkpoint'
            assert time.time() < deadline, 'no checkpoint in time'
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def trap_training(monkeypatch, module):
    """Replace ``module.train`` by a recorder that stops the run."""
    seen = []

    def fake_train(cfg):
        seen.append(dict(resume=cfg.resume, seed=cfg.randomness.seed,
                         load_from=cfg.get('load_from')))
        raise Stop

    monkeypatch.setattr(module, 'train', fake_train)
    return seen


def test_stage_killed_then_rerun_with_another_seed(tmp_path, monkeypatch):
    from branched_mtl.pipeline import BranchJob
    from branched_mtl.pipeline import stage_runner as branch_module
    cfg = write_main_config(tmp_path, LONG)
    wd = tmp_path / 'wd'
    left = wd / 'single_task' / 'left'
    kill_after_checkpoint([osp.join(TOOLS, 'branch.py'), cfg, '--work-dir',
                           str(wd), '--budget', '70%', '--random-trees', '0'],
                          left)
    killed = sorted(glob.glob(str(left / 'iter_*.pth')))
    assert killed and not (wd / 'stages').exists()
    seen = trap_training(monkeypatch, branch_module)

    def rerun(seed):
        lines = []
        job = BranchJob(cfg, str(wd), budget='70%', random_trees=0,
                        seed=seed, log=lines.append)
        with pytest.raises(Stop):
            job.run()
        return '\n'.join(lines)

    # the same seed: the killed run is resumed, nothing is cleared
    log = rerun(0)
    assert seen[-1]['resume'] and seen[-1]['seed'] == 0, seen
    assert 'cleared' not in log
    assert sorted(glob.glob(str(left / 'iter_*.pth'))) == killed
    # another seed: cleared, trained from the start, the log says why
    log = rerun(1)
    assert not seen[-1]['resume'] and seen[-1]['seed'] == 1, seen
    assert 'seed 0 (now 1)' in log and 'cleared' in log, log
    assert not glob.glob(str(left / 'iter_*.pth'))
    # and that run is now the one a third rerun with seed 1 resumes
    assert Config.fromfile(str(left / 'config.py')).randomness.seed == 1


def test_sweep_job_killed_then_rerun_with_another_seed(tmp_path,
                                                       monkeypatch):
    from branched_mtl.apis import runner
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         write_jobs, write_queue)
    from branched_mtl.apis.sweep.worker import run_job
    cfg_path = write_main_config(tmp_path, LONG)
    wd = str(tmp_path / 'sweep')

    def plan(seed):
        cfg = load_plan_config(cfg_path, {'randomness.seed': seed})
        return plan_sweep(cfg, wd, tasks='left,sum', splits='1',
                          mode='shared-bottom', iters=2, probe_samples=8)

    first = plan(0)
    write_jobs(first, 'none')
    queue = write_queue(first, resume=True)
    job = first.jobs[0]
    kill_after_checkpoint([osp.join(TOOLS, 'sweep_worker.py'), queue],
                          job.job_dir)
    killed = sorted(glob.glob(osp.join(job.job_dir, 'iter_*.pth')))
    assert killed and not job.is_done()

    lines = []
    write_jobs(plan(0), 'none', resume=True, log=lines.append)
    assert not lines  # the same config: the checkpoints stay for --resume
    assert sorted(glob.glob(osp.join(job.job_dir, 'iter_*.pth'))) == killed

    again = plan(1)
    write_jobs(again, 'none', resume=True, log=lines.append)
    assert any(job.name in line and 'another config' in line
               and 'cleared' in line for line in lines), lines
    assert not glob.glob(osp.join(job.job_dir, 'iter_*.pth'))
    assert not osp.exists(osp.join(job.job_dir, 'last_checkpoint'))
    assert 'cleared' in open(job.attempts_path).read()
    # the worker's run of the job then starts from scratch with seed 1
    seen = trap_training(monkeypatch, runner)
    run_job(again.jobs[0], 'run', resume=True)
    assert seen == [dict(resume=False, seed=1, load_from=None)], seen
    shutil.rmtree(wd)


def test_sweep_rerun_with_more_jobs_side_by_side_keeps_its_jobs(tmp_path):
    """``branch.sweep.max_parallel`` changes how fast a sweep runs, not
    what it computes: rerun with another value, a finished job stays
    finished and a killed job keeps its checkpoints (before, the first
    was refused as another config and the second cleared)."""
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         write_jobs)
    from branched_mtl.apis.sweep.jobs import config_digest
    cfg_path = write_main_config(tmp_path, LONG)
    wd = str(tmp_path / 'sweep')

    def plan(**options):
        cfg = load_plan_config(cfg_path, options)
        return plan_sweep(cfg, wd, tasks='left,sum', splits='1',
                          mode='shared-bottom', iters=2, probe_samples=8)

    first = plan(**{'branch.sweep.max_parallel': 1, 'branch.max_parallel': 1})
    assert first.jobs[0].cfg.branch.sweep.max_parallel == 1
    write_jobs(first, 'none')
    killed, done = first.jobs[0], first.jobs[1]
    open(osp.join(killed.job_dir, 'iter_2.pth'), 'w').close()
    os.makedirs(osp.join(done.job_dir, 'affinity_probe'))
    open(osp.join(done.job_dir, 'affinity_probe', 'meta.json'), 'w').close()
    open(done.done_path, 'w').close()

    lines = []
    faster = plan(**{'branch.sweep.max_parallel': 2,
                     'branch.max_parallel': 2})
    write_jobs(faster, 'none', resume=True, log=lines.append)
    assert not lines, lines
    assert osp.isfile(osp.join(killed.job_dir, 'iter_2.pth'))
    assert done.is_done()

    # a job.json written before the run-only settings left the digest
    # (the digest of the whole text) is another sweep with other options
    # (they cannot be told from other results), and the same sweep with
    # the same ones: that rerun writes its record in the current form, so
    # a later resume with another max_parallel keeps the job as well
    meta = json.load(open(done.meta_path))
    legacy = config_digest(first, done.cfg.pretty_text)
    meta['config_sha256'] = legacy
    json.dump(meta, open(done.meta_path, 'w'))
    with pytest.raises(ValueError, match='another config'):
        write_jobs(faster, 'none', resume=True)
    assert json.load(open(done.meta_path))['config_sha256'] == legacy
    write_jobs(plan(**{'branch.sweep.max_parallel': 1,
                       'branch.max_parallel': 1}), 'none', resume=True)
    upgraded = json.load(open(done.meta_path))
    assert upgraded['config_sha256'] != legacy
    assert {k: v for k, v in upgraded.items() if k != 'config_sha256'} == {
        k: v for k, v in meta.items() if k != 'config_sha256'}
    write_jobs(faster, 'none', resume=True)
    assert done.is_done()

    # an option that changes the results refuses the finished job, and
    # says so before it touches anything: the killed job keeps its run
    with pytest.raises(ValueError, match='another config'):
        write_jobs(plan(**{'randomness.seed': 1}), 'none', resume=True,
                   log=lines.append)
    assert not lines and osp.isfile(osp.join(killed.job_dir, 'iter_2.pth'))
    # ... and with no finished job in the way, clears the killed one
    os.remove(done.done_path)
    write_jobs(plan(**{'randomness.seed': 1}), 'none', resume=True,
               log=lines.append)
    assert any(killed.name in line and 'cleared' in line for line in lines)
    assert not osp.isfile(osp.join(killed.job_dir, 'iter_2.pth'))
