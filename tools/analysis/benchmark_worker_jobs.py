"""What a recombined job costs a sweep worker outside its training steps.

    python tools/analysis/benchmark_worker_jobs.py CONFIG --work-dir DIR \\
        [--baseline-root OLD] [--iters 2] [--repeats 3] [--tasks a,b,c]

One in-process worker (``run_worker``, as ``tools/sweep_worker.py`` runs
it) trains every shared-bottom job of a sweep over all splits, each job
only ``--iters`` iterations, so that nearly all of its time is what a job
costs besides training: building its Runner, model, loaders and hooks,
loading the single-task weights, the probe, checkpoints, clean-up. Per job
the script measures the time from claim to done and the time inside the
model's ``train_step`` (data preprocessor, forward, backward, optimiser
step); the difference is the job's cost outside training (hooks, data
loading and checkpoints included). The first job of a worker also imports
the libraries and is reported apart.

With ``--baseline-root`` (a checkout of the commit to compare against,
e.g. ``git worktree add --detach /tmp/base <commit>``) the same sweep runs
with that code too, the two taking turns ``--repeats`` times in one
session, each in a fresh process. The single-task models are stand-ins
(random weights of the right shapes): only the cost matters here. Writes
``DIR/benchmark.json``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--baseline-root',
                        help='checkout of the code to compare against')
    parser.add_argument('--tasks', help='default: all of the config')
    parser.add_argument('--iters', type=int, default=2,
                        help='training iterations per job')
    parser.add_argument('--probe-samples', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=3)
    # internal: run one sweep in this process with the code on sys.path
    parser.add_argument('--one', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _stand_in_single_task(cfg, tasks: List[str], root: str) -> str:
    """Single-task checkpoints with random weights of the right shapes."""
    import torch

    from branched_mtl.apis import single_task_config
    from branched_mtl.registry import build_stock
    for i, task in enumerate(tasks):
        folder = osp.join(root, task)
        path = osp.join(folder, 'iter_1.pth')
        if osp.isfile(path):
            continue
        torch.manual_seed(i)
        model = build_stock(single_task_config(cfg, task).model)
        os.makedirs(folder, exist_ok=True)
        torch.save(dict(state_dict=model.state_dict(), meta={}), path)
        with open(osp.join(folder, 'last_checkpoint'), 'w') as f:
            f.write(path)
    return root


def run_one(args: argparse.Namespace) -> Dict[str, Any]:
    """One sweep in one worker of this process; per-job times."""
    import torch
    from mmengine.runner import loops

    from branched_mtl.apis import config_tasks
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         write_jobs, write_queue)
    from branched_mtl.apis.sweep.worker import run_worker
    torch.set_num_threads(1)
    inside = [0.0]
    run_iter = loops.IterBasedTrainLoop.run_iter

    def timed(self, data_batch):
        # the model's train_step only (data preprocessor, forward,
        # backward, optimiser step): hooks and data loading count as
        # outside training
        model = self.runner.model
        step = model.train_step

        def timed_step(*a, **k):
            t = time.perf_counter()
            try:
                return step(*a, **k)
            finally:
                inside[0] += time.perf_counter() - t

        model.train_step = timed_step
        try:
            return run_iter(self, data_batch)
        finally:
            del model.train_step

    loops.IterBasedTrainLoop.run_iter = timed
    it = args.iters
    cfg = load_plan_config(args.config, {
        'train_cfg.max_iters': it, 'train_cfg.val_interval': it,
        'default_hooks.checkpoint.interval': it,
        'default_hooks.logger.interval': it})
    tasks = args.tasks.split(',') if args.tasks else config_tasks(cfg)
    st = _stand_in_single_task(cfg, tasks, osp.join(args.one, 'st'))
    plan = plan_sweep(cfg, osp.join(args.one, 'sweep'), tasks=','.join(tasks),
                      splits=None, mode='shared-bottom', single_task_dir=st,
                      probe_samples=args.probe_samples)
    write_jobs(plan, launcher='none')
    queue = write_queue(plan, resume=False)

    class Lines:
        """Worker's lines, each job's time stamped as it is written."""

        def __init__(self):
            self.jobs = []
            self.last = time.perf_counter()

        def write(self, text):
            if '] ' in text and ': done' in text:
                now = time.perf_counter()
                self.jobs.append(dict(
                    job=text.split('] ')[1].split(':')[0],
                    total_s=now - self.last, training_s=inside[0]))
                inside[0] = 0.0
                self.last = now

        def flush(self):
            pass

    lines = Lines()
    start = time.perf_counter()
    rc = run_worker(queue, 'none', out=lines)
    wall = time.perf_counter() - start
    for job in lines.jobs:
        job['outside_s'] = job['total_s'] - job['training_s']
    later = [j['outside_s'] for j in lines.jobs[1:]]
    return dict(rc=rc, wall_s=wall, jobs=lines.jobs,
                first_job_outside_s=lines.jobs[0]['outside_s'],
                median_outside_s=statistics.median(later),
                mean_outside_s=statistics.fmean(later),
                mean_training_s=statistics.fmean(
                    j['training_s'] for j in lines.jobs[1:]))


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.one:
        os.makedirs(args.one, exist_ok=True)
        out = run_one(args)
        with open(osp.join(args.one, 'result.json'), 'w') as f:
            json.dump(out, f, indent=1)
        return 0
    roots = {'new': ROOT}
    if args.baseline_root:
        roots = {'baseline': osp.abspath(args.baseline_root), 'new': ROOT}
    runs: Dict[str, List[Dict[str, Any]]] = {k: [] for k in roots}
    for r in range(args.repeats):
        for name, root in roots.items():
            folder = osp.join(args.work_dir, f'{name}_{r}')
            cmd = [sys.executable, osp.abspath(__file__), args.config,
                   '--work-dir', args.work_dir, '--one', folder,
                   '--iters', str(args.iters),
                   '--probe-samples', str(args.probe_samples)]
            if args.tasks:
                cmd += ['--tasks', args.tasks]
            env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS='1',
                       PYTHONWARNINGS='ignore')
            subprocess.run(cmd, check=True, cwd=root, env=env,
                           stdout=subprocess.DEVNULL)
            with open(osp.join(folder, 'result.json')) as f:
                res = json.load(f)
            runs[name].append(res)
            print(f'{name} run {r}: {len(res["jobs"])} jobs, median '
                  f'outside training {res["median_outside_s"]:.3f} s '
                  f'(first job {res["first_job_outside_s"]:.1f} s), '
                  f'training {res["mean_training_s"]:.3f} s per job')
    summary = {
        name: dict(median_outside_s=statistics.median(
            r['median_outside_s'] for r in rs),
                   mean_training_s=statistics.fmean(
                       r['mean_training_s'] for r in rs),
                   first_job_outside_s=statistics.median(
                       r['first_job_outside_s'] for r in rs))
        for name, rs in runs.items()
    }
    doc = dict(config=args.config, iters=args.iters, repeats=args.repeats,
               roots=roots, machine=platform.platform(),
               cpus=os.cpu_count(), load_average=os.getloadavg(),
               summary=summary, runs=runs)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
