"""Benchmark ways of running the recombination sweep against each other.

Trains the single-task models once (stage 0), then runs every variant's
sweep from them with the same options, one whole sweep per variant (or
split by split with ``--per-split``, rotating which variant goes first so
that a drifting machine load hits all alike). Reports
each variant's wall-clock time and CPU time (which other jobs on a shared
machine disturb less) against the first variant's, the largest difference
between their tournament affinities and per-sample probe losses, and
whether the tree built from each affinity (``--budget``) is the same.

Variants (``--variants``, the first is the baseline):

* ``per-pair``: one job per (target, source, split), a process each;
* ``shared-bottom``: one job per (source, split), a process each;
* ``in-process``: shared-bottom jobs run by ``--max-parallel`` in-process
  workers (with ``--per-split`` each split's invocation starts its
  workers anew);
* ``early-stop``: as ``in-process``, recombined runs stopped once their
  probe loss has not improved for ``--patience`` checks.

    python tools/analysis/benchmark_sweep.py CONFIG --work-dir DIR \\
        [--variants shared-bottom,in-process,early-stop] [--iters 30] \\
        [--data-fraction 0.25] [--max-parallel 2] [--cfg-options k=v ...]

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
VARIANTS = {
    'per-pair': ['--mode', 'per-pair', '--exec', 'per-job'],
    'shared-bottom': ['--mode', 'shared-bottom', '--exec', 'per-job'],
    'in-process': ['--mode', 'shared-bottom', '--exec', 'in-process'],
    'early-stop': ['--mode', 'shared-bottom', '--exec', 'in-process'],
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the multi-task config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--variants',
                        default='shared-bottom,in-process,early-stop',
                        help=f'comma-separated, from {list(VARIANTS)}; the '
                        'first is the baseline')
    parser.add_argument('--patience', type=int, default=3,
                        help='early-stop: checks without improvement')
    parser.add_argument('--check-interval', type=int, default=5,
                        help='early-stop: iterations between checks')
    parser.add_argument('--single-task-dir',
                        help='reuse finished single-task runs (DIR/<task>/) '
                        'instead of training them (stage 0)')
    parser.add_argument('--per-split', action='store_true',
                        help='time each split apart, rotating the order '
                        '(default: one whole sweep per variant)')
    parser.add_argument('--budget', default='60%',
                        help='parameter budget of the trees compared')
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
    from branched_mtl.apis.sweep import (load_plan_config, plan_sweep,
                                         run_jobs, write_jobs)
    cfg = load_plan_config(args.config, args.cfg_options)
    single_runs = args.single_task_dir
    stage0 = 0.0
    if single_runs is None:
        # stage 0 once, shared by every variant: a one-split sweep trains it
        plan = plan_sweep(cfg, single_dir, tasks=args.tasks, splits='1',
                          probe_samples=args.probe_samples)
        write_jobs(plan, launcher=args.launcher)
        start = time.perf_counter()
        failed = run_jobs(plan.stage(0), args.max_parallel)
        stage0 = time.perf_counter() - start
        if failed:
            sys.exit(f'benchmark_sweep: single-task runs failed: {failed}')
        single_runs = osp.join(single_dir, 'single_task')
    tasks = args.tasks or ','.join(cfg.model.encoder.tasks)
    splits = plan_sweep(cfg, single_dir, tasks=tasks,
                        splits=args.splits).splits
    common = ['--single-task-dir', single_runs,
              '--tasks', tasks,
              '--iters', str(args.iters), '--data-fraction',
              str(args.data_fraction)]
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or len(variants) < 2 or len(set(variants)) != len(variants):
        sys.exit(f'benchmark_sweep: --variants needs two or more of '
                 f'{list(VARIANTS)}, got {args.variants!r}')

    def extra(variant: str) -> List[str]:
        out = list(VARIANTS[variant])
        if variant == 'early-stop':
            out += ['--early-stop', str(args.patience),
                    '--early-stop-interval', str(args.check_interval)]
        return out

    seconds = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    # whole sweeps (each variant's start-up paid as in real use), or split
    # by split with the order rotated, so that a drifting load hits every
    # variant alike (each invocation then pays its start-up again)
    rounds = [splits] if not args.per_split else [[s] for s in splits]
    for i, part in enumerate(rounds):
        order = variants[i % len(variants):] + variants[:i % len(variants)]
        for variant in order:
            wall, used = _sweep(
                args, osp.join(args.work_dir, variant),
                common + extra(variant) +
                ['--splits', ','.join(map(str, part))])
            seconds[variant].append(wall)
            cpu[variant].append(used)
            print(f'[benchmark] splits {part} {variant}: {wall:.1f} s '
                  f'wall, {used:.1f} s CPU', flush=True)
    if args.per_split:
        # every job is done: one invocation per variant collects all splits
        all_splits = ','.join(map(str, splits))
        for variant in variants:
            _sweep(args, osp.join(args.work_dir, variant),
                   common + extra(variant) + ['--splits', all_splits])

    from branched_mtl.affinity import load_affinity
    base = variants[0]
    aff = {v: load_affinity(osp.join(args.work_dir, v,
                                     'affinity_tournament.json'))
           for v in variants}
    losses = {v: _probe_losses(osp.join(args.work_dir, v))
              for v in variants}
    trees = {v: _tree(args, osp.join(args.work_dir, v)) for v in variants}
    total = {v: sum(t) for v, t in seconds.items()}
    total_cpu = {v: sum(t) for v, t in cpu.items()}
    compared = {}
    for v in variants[1:]:
        a, b = aff[base], aff[v]
        assert a['tasks'] == b['tasks'] and a['blocks'] == b['blocks']
        shared = set(losses[base]) & set(losses[v])
        compared[v] = dict(
            speedup=total[base] / total[v],
            cpu_ratio=total_cpu[base] / total_cpu[v],
            max_abs_affinity_diff=float(
                np.abs(a['affinity'] - b['affinity']).max()),
            max_abs_probe_loss_diff=max(
                float(np.max(np.abs(losses[base][k] - losses[v][k])))
                for k in shared),
            same_tree=trees[v] == trees[base])
    stops = _early_stops(osp.join(args.work_dir, 'early-stop')) \
        if 'early-stop' in variants else None
    result = dict(
        config=args.config, tasks=aff[base]['tasks'],
        blocks=aff[base]['blocks'], splits=splits, iters=args.iters,
        data_fraction=args.data_fraction,
        probe_samples=args.probe_samples, max_parallel=args.max_parallel,
        launcher=args.launcher, cfg_options=args.cfg_options,
        variants=variants, baseline=base, budget=args.budget,
        stage0_seconds=stage0, seconds_per_split=seconds,
        total_seconds=total, cpu_seconds_per_split=cpu,
        total_cpu_seconds=total_cpu, against_baseline=compared,
        trees=trees, early_stop=stops,
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(),
                     python=platform.python_version()))
    with open(osp.join(args.work_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def _tree(args, sweep_dir: str) -> Optional[list]:
    """The branches of the tree built from a sweep's affinity (None when
    the sweep covers only some of the config's tasks)."""
    from mmengine.config import Config

    from branched_mtl.apis import config_tasks
    from branched_mtl.models import describe_model
    from branched_mtl.tree import count_tree_params, fully_separate
    cfg = Config.fromfile(args.config)
    if args.tasks and set(args.tasks.split(',')) != set(config_tasks(cfg)):
        return None
    budget = args.budget
    if budget.endswith('%'):  # of the single-task models together
        info = describe_model(cfg.model.to_dict())
        separate = count_tree_params(
            fully_separate(config_tasks(cfg), len(info['block_names'])),
            info['block_params'], info['head_params'])
        budget = str(round(float(budget[:-1]) / 100 * separate))
    out = osp.join(sweep_dir, 'tree', 'branched.py')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'build_tree.py'),
           osp.join(sweep_dir, 'affinity_tournament.json'), args.config,
           '--budget', budget, '--out', out, '--no-draw']
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return [list(map(list, level)) if isinstance(level, (list, tuple))
            else level for level in Config.fromfile(out).model.encoder.branches]


def _early_stops(sweep_dir: str) -> dict:
    """Where the early-stopped runs stopped, and the iterations saved."""
    import glob
    records = [json.load(open(p)) for p in sorted(glob.glob(
        osp.join(sweep_dir, 'jobs', '*', 'early_stop.json')))]
    ran = [r['stopped_at'] or r['max_iters'] for r in records]
    planned = [r['max_iters'] for r in records]
    return dict(jobs=len(records),
                stopped=sum(r['stopped_at'] is not None for r in records),
                iters_run=sum(ran), iters_planned=sum(planned),
                stopped_at=[r['stopped_at'] for r in records])


if __name__ == '__main__':
    main()
