"""Measure task conflict on a multi-task config before any method runs.

    OMP_NUM_THREADS=1 python tools/analysis/measure_conflict.py CONFIG \\
        --widths 4 8 --seeds 0 1 2 --work-dir work_dirs/conflict \\
        [--out docs/figures/planted_digits] [--doc docs/planted_digits.md]

For every width and seed it trains the all-shared model and one single-task
model per task (the config's schedule; each run tested once on the test
split, with its final weights), and takes the cosines between the tasks'
loss gradients on every block of the all-shared encoder, at initialisation
and after training, on a batch of the probe split (the val loader). It
writes ``conflict.json`` and ``conflict.png`` under ``--out`` and, with
``--doc``, the table between the markers ``<!-- conflict:start -->`` and
``<!-- conflict:end -->`` of that file (``--doc-section`` renames them).
Finished runs are read back from the work dir, so an interrupted
measurement resumes where it stopped.
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import shlex
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import numpy as np  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
import torch  # noqa: E402

import branched_mtl  # noqa: F401,E402  (compat before mmseg)
from branched_mtl.apis.configs import (  # noqa: E402
    config_tasks, single_task_config)
from branched_mtl.apis.runner import build_runner, load_config  # noqa: E402
from branched_mtl.evaluation.planted_groups import (  # noqa: E402
    group_means, within_across)
from branched_mtl.evaluation.task_conflict import (  # noqa: E402
    accuracy_gaps, gradient_cosines, read_task_curves, set_width,
    unconverged_tasks)
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the all-shared multi-task config')
    parser.add_argument('--widths', type=int, nargs='+', default=[4, 8])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/conflict')
    parser.add_argument('--out', default='docs/figures/planted_digits')
    parser.add_argument('--doc', help='markdown file to put the table in')
    parser.add_argument(
        '--doc-section', default='conflict',
        help='the table goes between <!-- SECTION:start --> and '
        '<!-- SECTION:end --> of --doc')
    parser.add_argument('--probe-batch', type=int, default=256,
                        help='probe images of the gradient batch')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config first, key=value pairs')
    parser.add_argument('--commit', help='the commit to record (default: '
                        'the checkout\'s HEAD)')
    return parser.parse_args(argv)


def _result_path(folder: str) -> str:
    return osp.join(folder, 'conflict_result.json')


def _run(cfg, folder: str, grads: bool) -> dict:
    """Train and test one model (or read its finished result)."""
    path = _result_path(folder)
    if osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    cfg = cfg.copy()
    cfg.work_dir = folder
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=-1, save_last=False)
    tasks = config_tasks(cfg)
    start = time.time()
    runner = build_runner(cfg)
    result: Dict = {}
    if grads:
        # the runner initialises the weights when training starts: draw the
        # same init here first (the RNG state put back afterwards)
        rng = torch.get_rng_state()
        runner.model.init_weights()
        torch.set_rng_state(rng)
        batch = _probe_batch(runner)
        result['blocks'], init = gradient_cosines(runner.model, batch)
        result['cos_init'] = init.tolist()
    runner.train()
    seconds = time.time() - start
    metrics = runner.test()
    result['test'] = {t: float(metrics[f'{t}/accuracy/top1'])
                      for t in tasks}
    result['train_seconds'] = seconds
    curves = read_task_curves(folder, tasks)
    result['curves'] = curves
    result['unconverged'] = unconverged_tasks(curves,
                                              cfg.train_cfg.max_iters)
    if grads:
        result['cos_end'] = gradient_cosines(
            runner.model, _probe_batch(runner))[1].tolist()
    os.makedirs(folder, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(result, f)
    os.replace(path + '.tmp', path)
    return result


_BATCH: Dict[int, dict] = {}


def _probe_batch(runner) -> dict:
    """The first ``--probe-batch`` probe images (the val set), collated."""
    size = _BATCH['size']
    if 'batch' not in _BATCH:
        dataset = runner.val_dataloader.dataset
        items = [dataset[i] for i in range(min(size, len(dataset)))]
        _BATCH['batch'] = runner.val_dataloader.collate_fn(items)
    return _BATCH['batch']


def measure(args: argparse.Namespace) -> dict:
    base = load_config(args.config, args.work_dir, args.cfg_options)
    tasks = config_tasks(base)
    groups = base.train_dataloader.dataset.get('groups')
    runs = {}
    for width in args.widths:
        for seed in args.seeds:
            cfg = set_width(base, width)
            cfg.randomness = dict(seed=seed)
            root = osp.join(args.work_dir, f'w{width}', f'seed{seed}')
            t0 = time.time()
            shared = _run(cfg, osp.join(root, 'all_shared'), grads=True)
            single = {t: _run(single_task_config(cfg, t),
                              osp.join(root, f'single_{t}'), grads=False)
                      for t in tasks}
            runs[(width, seed)] = (shared, single)
            print(f'width {width} seed {seed}: {time.time() - t0:.0f} s; '
                  f'all-shared {shared["test"]}', flush=True)
    return summarize(args, tasks, groups, runs)


def summarize(args, tasks, groups, runs) -> dict:
    out = dict(config=args.config, tasks=tasks, groups=groups,
               widths={}, seeds=args.seeds)
    for width in args.widths:
        shared = [runs[(width, s)][0] for s in args.seeds]
        single = [runs[(width, s)][1] for s in args.seeds]
        gaps = accuracy_gaps(
            {t: [r[t]['test'][t] for r in single] for t in tasks},
            {t: [r['test'][t] for r in shared] for t in tasks})
        # the same on the probe split (last validation): what a decision,
        # such as the width, may read
        probe = accuracy_gaps(
            {t: [r[t]['curves'][t][-1][1] for r in single] for t in tasks},
            {t: [r['curves'][t][-1][1] for r in shared] for t in tasks})
        entry = dict(accuracy=gaps, probe_accuracy=probe,
                     blocks=shared[0]['blocks'])
        for when in ('init', 'end'):
            cos = np.mean([r[f'cos_{when}'] for r in shared], axis=0)
            entry[f'cos_{when}'] = cos.tolist()
            if groups:
                per_seed = [within_across(r[f'cos_{when}'], tasks, groups)
                            for r in shared]
                entry[f'within_{when}'] = np.mean(
                    [p['within'] for p in per_seed], 0).tolist()
                entry[f'across_{when}'] = np.mean(
                    [p['across'] for p in per_seed], 0).tolist()
                # per pair of groups, mean over blocks and seeds
                entry[f'groups_{when}'] = np.mean(
                    [group_means(r[f'cos_{when}'], tasks, groups).mean(0)
                     for r in shared], 0).tolist()
                entry[f'within_minus_across_{when}_std'] = np.std(
                    [np.subtract(p['within'], p['across'])
                     for p in per_seed], 0, ddof=1).tolist() if len(
                         per_seed) > 1 else None
        entry['train_seconds'] = dict(
            all_shared=float(np.mean([r['train_seconds'] for r in shared])),
            single=float(np.mean([r[t]['train_seconds'] for r in single
                                  for t in tasks])))
        entry['unconverged'] = dict(
            all_shared=sorted({t for r in shared for t in r['unconverged']}),
            single=sorted({t for r in single for t in tasks
                           if t in r[t]['unconverged']}))
        out['widths'][str(width)] = entry
    return out


def markdown(result: dict, command: str) -> str:
    tasks = result['tasks']
    lines = [f'Command: `{command}`', '',
             f'Commit {result["commit"]}, {result["machine"]}, finished '
             f'{result["finished"]}.', '']
    for width, e in result['widths'].items():
        secs = e['train_seconds']
        lines += [f'**Width {width}** (base channels; train time per model '
                  f'{secs["single"]:.0f} s single-task, '
                  f'{secs["all_shared"]:.0f} s all-shared, wall; still '
                  f'improving over the last fifth in some seed: single-task '
                  f'{e["unconverged"]["single"] or "none"}, all-shared '
                  f'{e["unconverged"]["all_shared"] or "none"})', '',
                  '| task | single-task (test) | all-shared (test) | gap | '
                  'beyond spread | probe gap | beyond spread (probe) |',
                  '| --- | --- | --- | --- | --- | --- | --- |']
        for t in tasks:
            a, p = e['accuracy'][t], e['probe_accuracy'][t]
            lines.append(
                f'| {t} | {a["single"]:.1f} ± {a["single_std"]:.1f} | '
                f'{a["shared"]:.1f} ± {a["shared_std"]:.1f} | '
                f'{a["gap"]:+.1f} | {"yes" if a["beyond_spread"] else ""} | '
                f'{p["gap"]:+.1f} | {"yes" if p["beyond_spread"] else ""} |')
        if 'within_init' in e:
            lines += ['', '| block | within init | across init | within end '
                      '| across end |', '| --- | --- | --- | --- | --- |']
            for b, name in enumerate(e['blocks']):
                lines.append(
                    f'| {name} | {e["within_init"][b]:.3f} | '
                    f'{e["across_init"][b]:.3f} | {e["within_end"][b]:.3f} '
                    f'| {e["across_end"][b]:.3f} |')
        if e.get('groups_end') is not None:
            names = list(result['groups'])
            lines += ['', 'Mean gradient cosine after training per pair of '
                      'groups (over blocks and seeds; diagonal: pairs of '
                      'tasks of one group):', '',
                      '| | ' + ' | '.join(names) + ' |',
                      '| --- |' + ' --- |' * len(names)]
            for g, row in zip(names, e['groups_end']):
                lines.append(f'| {g} | ' + ' | '.join(
                    '-' if np.isnan(v) else f'{v:.3f}' for v in row) + ' |')
        lines.append('')
    return '\n'.join(lines)


def plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tasks, widths = result['tasks'], list(result['widths'])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    x = np.arange(len(tasks))
    step = 0.8 / len(widths)
    for k, w in enumerate(widths):
        acc = result['widths'][w]['accuracy']
        gap = [acc[t]['gap'] for t in tasks]
        err = [acc[t]['single_std'] + acc[t]['shared_std'] for t in tasks]
        axes[0].bar(x + k * step, gap, step, yerr=err, capsize=2,
                    label=f'width {w}')
    axes[0].axhline(0, color='k', lw=0.8)
    axes[0].set_xticks(x + 0.4 - step / 2, tasks, rotation=35, ha='right')
    axes[0].set_ylabel('all-shared - single-task test acc. (points)')
    axes[0].set_title('accuracy gap (error bar: sum of seed stds)')
    axes[0].legend()
    for k, w in enumerate(widths):
        e = result['widths'][w]
        if 'within_end' not in e:
            continue
        b = np.arange(len(e['blocks']))
        for when, style in (('init', ':'), ('end', '-')):
            axes[1].plot(b, e[f'within_{when}'], style, marker='o',
                         color=f'C{k}', label=f'w{w} within ({when})')
            axes[1].plot(b, e[f'across_{when}'], style, marker='x',
                         color=f'C{k}', alpha=0.6,
                         label=f'w{w} across ({when})')
        axes[1].set_xticks(b, e['blocks'])
    axes[1].axhline(0, color='k', lw=0.8)
    axes[1].set_ylabel('mean gradient cosine')
    axes[1].set_title('task gradients on the all-shared encoder')
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(cfg, path: str, num: int = 16) -> None:
    """Probe images with their factors, as the data set renders them."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from branched_mtl.registry import DATASETS
    ds_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    ds_cfg.pipeline = []
    dataset = DATASETS.build(ds_cfg)
    cols = 8
    fig, axes = plt.subplots(num // cols, cols, figsize=(cols * 1.6,
                                                       num // cols * 1.8))
    for i, ax in enumerate(axes.flat):
        info = dataset[i]
        f = info['factors']
        ax.imshow(info['img'])
        # the first digit's class and rotation, the stripes' orientation
        # and period (index into the config's lists)
        digit = f.get('digit', f.get('digit_0'))
        rot = f.get('rotation', f.get('rotation_0'))
        ax.set_title(f'{digit} {rot:+.0f}\u00b0 o{f["stripe_orientation"]}'
                     f' p{f["stripe_period"]}', fontsize=7)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def write_doc(path: str, text: str, section: str = 'conflict') -> None:
    start, end = f'<!-- {section}:start -->', f'<!-- {section}:end -->'
    with open(path) as f:
        doc = f.read()
    if start not in doc or end not in doc:
        raise ValueError(f'{path} lacks the markers {start} and {end}')
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    with open(path, 'w') as f:
        f.write(f'{head}{start}\n{text}\n{end}{tail}')


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    _BATCH['size'] = args.probe_batch
    command = 'python tools/analysis/measure_conflict.py ' + ' '.join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    result = measure(args)
    result['commit'] = args.commit or subprocess.run(
        ['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
        text=True, cwd=osp.dirname(osp.abspath(__file__))).stdout.strip() \
        or 'unknown'
    result['machine'] = (f'{platform.machine()}, {os.cpu_count()} cores, '
                         f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}'
                         f', torch {torch.__version__}')
    result['finished'] = time.strftime('%Y-%m-%d %H:%M')
    result['command'] = command
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'conflict.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plot(result, osp.join(args.out, 'conflict.png'))
    plot_samples(load_config(args.config, args.work_dir, args.cfg_options),
                 osp.join(args.out, 'samples.png'))
    if args.doc:
        write_doc(args.doc, markdown(result, command), args.doc_section)
    print(f'wrote {osp.join(args.out, "conflict.json")}')
    return result


if __name__ == '__main__':
    quiet_known_warnings()
    main()
