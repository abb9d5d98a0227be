"""The tournament sweep at the paper's setting, today's way and the new way.

    python tools/analysis/benchmark_faithful_sweep.py CONFIG \\
        --work-dir DIR --single-task-dir ST --baseline-root OLD \\
        [--tasks left,right,sum] [--splits 1,3,5] [--max-parallel 2]

The paper retrains every recombined network with the single-task schedule
on all the training data. Three shared-bottom sweeps from the same
single-task runs (``ST/<task>/``), one after the other:

* ``today-per-job``: the paper's setting, run by the code in
  ``--baseline-root`` (a checkout of the commit to compare against, e.g.
  ``git worktree add /tmp/base <commit>``), one process per job;
* ``new``: the paper's setting, this checkout: in-process workers, frozen
  bottoms computed once per sample (RecombinationHook's feature cache, on
  by default) and the training set pre-collated (PrecollatedDataset);
* ``today-short``: the baseline's shortened sweep (``--short-iters``
  iterations on ``--short-fraction`` of the data, in-process workers), as
  ``tools/branch.py`` runs the tournament today.

Each sweep is timed from the start of ``tools/sweep_recombination.py`` to
its exit (wall clock, and CPU seconds of it and all its jobs). The two
paper-setting sweeps must give the same affinity: their largest difference
is reported. Writes ``DIR/benchmark.json``.
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
from typing import Dict, List, Optional

import numpy as np
from mmengine.config import Config, DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the multi-task config; its '
                        'schedule is the single-task schedule')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--single-task-dir', required=True)
    parser.add_argument('--baseline-root', required=True,
                        help='checkout of the code to compare against')
    parser.add_argument('--tasks')
    parser.add_argument('--splits')
    parser.add_argument('--max-parallel', type=int, default=2)
    parser.add_argument('--probe-samples', type=int, default=64)
    parser.add_argument('--short-iters', type=int, default=60)
    parser.add_argument('--short-fraction', type=float, default=0.25)
    parser.add_argument('--variants',
                        default='today-per-job,new,today-short')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def new_config(config: str, cfg_options: Optional[dict], out: str) -> str:
    """The config with its training set pre-collated, written to ``out``."""
    from branched_mtl.datasets import precollate_loader
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    precollate_loader(cfg.train_dataloader)
    cfg.dump(out)
    return out


def run(root: str, config: str, work_dir: str, extra: List[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    cmd = [sys.executable, osp.join(root, 'tools', 'sweep_recombination.py'),
           config, '--work-dir', work_dir, '--mode', 'shared-bottom'] + extra
    print('$', ' '.join(cmd), flush=True)
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, env=env, cwd=root)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f'benchmark_faithful_sweep: sweep failed '
                 f'({proc.returncode}): {" ".join(cmd)}')
    return dict(wall_s=wall, cpu_s=_children_cpu() - cpu,
                load_avg_end=list(os.getloadavg()))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    config = osp.abspath(args.config)
    common = ['--single-task-dir', osp.abspath(args.single_task_dir),
              '--probe-samples', str(args.probe_samples),
              '--max-parallel', str(args.max_parallel),
              '--launcher', 'pytorch']
    for name, value in (('--tasks', args.tasks), ('--splits', args.splits)):
        if value:
            common += [name, value]
    options = ['--cfg-options'] + [f'{k}={v}'.replace(' ', '') for k, v in
                                   args.cfg_options.items()] \
        if args.cfg_options else []
    base = osp.abspath(args.baseline_root)
    new_cfg = new_config(config, args.cfg_options,
                         osp.join(osp.abspath(args.work_dir),
                                  'config_precollated.py'))
    variants = {
        'today-per-job': (base, config, ['--exec', 'per-job'] + options),
        'new': (ROOT, new_cfg, ['--exec', 'in-process']),
        'today-short': (base, config, [
            '--exec', 'in-process', '--iters', str(args.short_iters),
            '--data-fraction', str(args.short_fraction)] + options),
    }
    names = [v.strip() for v in args.variants.split(',') if v.strip()]
    bad = [n for n in names if n not in variants]
    if bad:
        sys.exit(f'benchmark_faithful_sweep: unknown variant(s) {bad}; '
                 f'choose from {list(variants)}')
    load_start = list(os.getloadavg())
    times: Dict[str, dict] = {}
    for name in names:
        root, cfg, extra = variants[name]
        times[name] = run(root, cfg, osp.join(args.work_dir, name),
                          common + extra)
        print(f'[benchmark] {name}: {times[name]}', flush=True)
    from branched_mtl.affinity import load_affinity
    aff = {n: load_affinity(osp.join(args.work_dir, n,
                                     'affinity_tournament.json'))
           for n in names}
    result = dict(config=args.config, tasks=args.tasks, splits=args.splits,
                  max_parallel=args.max_parallel,
                  baseline_root=base, times=times,
                  load_avg_start=load_start,
                  machine=dict(cpus=os.cpu_count(),
                               platform=platform.platform()))
    if 'new' in times:
        for other in names:
            if other == 'new':
                continue
            result[f'new_vs_{other}'] = dict(
                wall_ratio=times[other]['wall_s'] / times['new']['wall_s'],
                cpu_ratio=times[other]['cpu_s'] / times['new']['cpu_s'])
        if 'today-per-job' in aff:
            result['max_abs_affinity_diff_new_vs_today_per_job'] = float(
                np.abs(aff['new']['affinity'] -
                       aff['today-per-job']['affinity']).max())
    for n in names:
        off = aff[n]['affinity'][:, ~np.eye(len(aff[n]['tasks']), dtype=bool)]
        result.setdefault('off_diagonal_range', {})[n] = [
            float(off.min()), float(off.max())]
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
