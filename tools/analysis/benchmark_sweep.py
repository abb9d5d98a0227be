"""Benchmark the shared-bottom sweep against one job per recombined pair.

Trains the single-task models once (stage 0), then runs both sweeps from
them with the same options, split by split, alternating which mode goes
first so that a drifting machine load hits both alike. Reports the wall-
clock ratio of the whole sweeps (and their CPU time, which other jobs on a
shared machine disturb less) and the largest difference between their
tournament affinities (and per-sample probe losses).

    python tools/analysis/benchmark_sweep.py CONFIG --work-dir DIR \\
        [--iters 30] [--data-fraction 0.25] [--max-parallel 2] \\
        [--cfg-options k=v ...]

Writes ``DIR/benchmark.json``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SWEEP = osp.join(ROOT, 'tools', 'sweep_recombination.py')
MODES = ('per-pair', 'shared-bottom')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--tasks', help='comma-separated subset of tasks '
                        '(default: all)')
    parser.add_argument('--splits', help='as in sweep_recombination.py '
                        '(default: all)')
    parser.add_argument('--iters', type=int, default=30,
                        help='iterations of each recombined run')
    parser.add_argument('--data-fraction', type=float, default=0.25)
    parser.add_argument('--probe-samples', type=int, default=64)
    parser.add_argument('--max-parallel', type=int, default=2)
    parser.add_argument('--launcher', default='pytorch',
                        choices=['pytorch', 'none'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the multi-task config '
                        '(single-task and recombined runs)')
    return parser.parse_args(argv)


def _options(cfg_options: Optional[dict]) -> List[str]:
    if not cfg_options:
        return []
    return ['--cfg-options'] + [
        f'{k}={v}'.replace(' ', '') for k, v in cfg_options.items()
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sweep(args, work_dir: str, extra: List[str]) -> Tuple[float, float]:
    """Run one sweep invocation.

    Returns:
        Wall-clock seconds and CPU seconds of the sweep and all its jobs
        (every process of the tree is waited for, so it is counted).
    """
    cmd = [sys.executable, SWEEP, args.config, '--work-dir', work_dir,
           '--probe-samples', str(args.probe_samples), '--max-parallel',
           str(args.max_parallel), '--launcher', args.launcher
           ] + extra + _options(args.cfg_options)
    print('$', ' '.join(cmd), flush=True)
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd)
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f'benchmark_sweep: sweep failed ({proc.returncode}): '
                 f'{" ".join(cmd)}')
    return seconds, _children_cpu() - cpu


def _probe_losses(sweep_dir: str) -> Dict[tuple, np.ndarray]:
    """(target, source, split) -> per-sample losses of the target."""
    from branched_mtl.affinity import find_probe_runs, read_probe
    out = {}
    for run_dir in find_probe_runs(osp.join(sweep_dir, 'jobs')):
        run = read_probe(run_dir)
        losses = run.losses()
        for key in run.recombined:
            out[key] = losses[run.tasks.index(key[0])]
    return out


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    single_dir = osp.join(args.work_dir, 'stage0')
    # stage 0 once, shared by both sweeps: a one-split sweep trains it
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         run_jobs, write_jobs)
    cfg = load_plan_config(args.config, args.cfg_options)
    plan = plan_sweep(cfg, single_dir, tasks=args.tasks, splits='1',
                      probe_samples=args.probe_samples)
    write_jobs(plan, launcher=args.launcher)
    start = time.perf_counter()
    failed = run_jobs(plan.stage(0), args.max_parallel)
    stage0 = time.perf_counter() - start
    if failed:
        sys.exit(f'benchmark_sweep: single-task runs failed: {failed}')
    splits = plan_sweep(cfg, single_dir, tasks=args.tasks,
                        splits=args.splits).splits
    common = ['--single-task-dir', osp.join(single_dir, 'single_task'),
              '--tasks', ','.join(plan.tasks),
              '--iters', str(args.iters), '--data-fraction',
              str(args.data_fraction)]
    seconds = {m: [] for m in MODES}
    cpu = {m: [] for m in MODES}
    for i, split in enumerate(splits):
        order = MODES if i % 2 == 0 else MODES[::-1]
        for mode in order:
            wall, used = _sweep(
                args, osp.join(args.work_dir, mode),
                common + ['--mode', mode, '--splits', str(split)])
            seconds[mode].append(wall)
            cpu[mode].append(used)
            print(f'[benchmark] split {split} {mode}: {wall:.1f} s wall, '
                  f'{used:.1f} s CPU', flush=True)
    # every job is done now: one invocation per mode collects all splits
    all_splits = ','.join(map(str, splits))
    for mode in MODES:
        _sweep(args, osp.join(args.work_dir, mode),
               common + ['--mode', mode, '--splits', all_splits])

    from branched_mtl.affinity import load_affinity
    aff = {m: load_affinity(osp.join(args.work_dir, m,
                                     'affinity_tournament.json'))
           for m in MODES}
    a, b = aff['per-pair'], aff['shared-bottom']
    assert a['tasks'] == b['tasks'] and a['layers'] == b['layers']
    diff = np.abs(a['affinity'] - b['affinity'])
    la, lb = (_probe_losses(osp.join(args.work_dir, m)) for m in MODES)
    assert set(la) == set(lb)
    loss_diff = max(float(np.max(np.abs(la[k] - lb[k]))) for k in la)
    total = {m: sum(v) for m, v in seconds.items()}
    total_cpu = {m: sum(v) for m, v in cpu.items()}
    result = dict(
        config=args.config, tasks=a['tasks'], layers=a['layers'],
        splits=splits, iters=args.iters, data_fraction=args.data_fraction,
        probe_samples=args.probe_samples, max_parallel=args.max_parallel,
        launcher=args.launcher, cfg_options=args.cfg_options,
        stage0_seconds=stage0, seconds_per_split=seconds,
        total_seconds=total,
        speedup=total['per-pair'] / total['shared-bottom'],
        cpu_seconds_per_split=cpu, total_cpu_seconds=total_cpu,
        cpu_ratio=total_cpu['per-pair'] / total_cpu['shared-bottom'],
        max_abs_affinity_diff=float(diff.max()),
        max_abs_probe_loss_diff=loss_diff,
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(),
                     python=platform.python_version()))
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
