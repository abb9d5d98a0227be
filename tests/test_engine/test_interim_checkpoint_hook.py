"""InterimCheckpointHook: a recombined run keeps the checkpoints that let
it resume, never one after its last iteration (resuming a killed run from
them: tests/test_apis/test_sweep_worker.py and
tests/test_reliability/test_worker_kills.py)."""
import glob
import os.path as osp
import sys

from mmengine.config import Config

from branched_mtl.apis.sweep import plan_sweep, write_jobs
from branched_mtl.apis.sweep.worker import run_job

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)),
                            'test_apis'))
from test_sweep_worker import single_task_runs, tiny_cfg  # noqa: E402


def _plan(tmp_path, name, iters):
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    plan = plan_sweep(tiny_cfg(iters=iters), str(tmp_path / name),
                      tasks='left,sum', splits='2', mode='shared-bottom',
                      single_task_dir=st, probe_samples=6)
    write_jobs(plan, launcher='none')
    return plan


def _iters(job_dir):
    return sorted(int(osp.basename(p)[5:-4])
                  for p in glob.glob(osp.join(job_dir, 'iter_*.pth')))


def test_no_checkpoint_after_the_last_iteration(tmp_path):
    plan = _plan(tmp_path, 'sweep', iters=3)
    job = plan.jobs[0]
    cfg = Config.fromfile(job.config_path)
    assert cfg.default_hooks.checkpoint.type == 'InterimCheckpointHook'
    assert run_job(job, 'run', resume=False) is None
    # every iteration but the last (interval 1 in the tiny config)
    assert _iters(job.job_dir) == [1, 2]
    assert job.is_done()
