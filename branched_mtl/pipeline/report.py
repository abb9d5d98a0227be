"""report.md of the main job: every number from this run's logs and
checkpoints."""
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

from branched_mtl.affinity import load_affinity
from branched_mtl.apis.inference import plot_test_predictions
from branched_mtl.evaluation import delta_m
from branched_mtl.tree import format_tree
from branched_mtl.tree.draw import draw_tree
from branched_mtl.utils import write_text_atomic
from branched_mtl.visualization.affinity import (plot_affinity_heatmaps,
                                                 plot_affinity_vs_depth)
from .measure import input_shape, measure_model
from .selection import still_improving


# test images in the report's prediction figure
PREDICTION_IMAGES = 3


def primary_keys(metrics: Dict[str, float], tasks: List[str],
                 primary: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Each task's primary metric: ``<task>/<primary[task]>`` when the
    evaluator names one, else the first ``<task>/...`` key reported."""
    keys = {}
    primary = primary or {}
    for task in tasks:
        if task in primary:
            key = f'{task}/{primary[task]}'
            key = key if key in metrics else None
        else:
            key = next((k for k in metrics if k.startswith(f'{task}/')),
                       None)
        if key is None:
            raise KeyError(f'no metric for task {task!r} in {sorted(metrics)}')
        keys[task] = key
    return keys


def _lower_is_better(cfg: Config) -> List[str]:
    evaluator = cfg.get('test_evaluator', {})
    return list(evaluator.get('lower_is_better', []) or [])


def summarise(job: Any) -> Tuple[List[dict], Dict[str, str]]:
    """One row per model: per-task metric, Δm, params, FLOPs, throughput."""
    tasks = job.tasks
    single = {t: job.results[f'single_task/{t}'] for t in tasks}
    primary = dict(job.cfg.get('test_evaluator', {}).get('primary') or {})
    keys = {}
    for t in tasks:
        keys.update(primary_keys(single[t]['metrics'], [t], primary))
    reference = {keys[t]: single[t]['metrics'][keys[t]] for t in tasks}
    lower = [keys[t] for t in _lower_is_better(job.cfg)]
    shape = input_shape(job.cfg)

    def measure(name: str) -> dict:
        # the architecture is all a size or speed depends on: the job's
        # own config of the model, not the record's files
        return measure_model(job.configs[name], shape)

    rows = []
    # the single-task models side by side: their sizes and FLOPs add up,
    # their throughput is that of running all of them on each image
    sizes = [measure(f'single_task/{t}') for t in tasks]
    rows.append(dict(
        model='single-task (all)', metrics=reference, delta_m=0.0,
        params=sum(s['params'] for s in sizes),
        flops=sum(s['flops'] for s in sizes),
        images_per_s=1.0 / sum(1.0 / s['images_per_s'] for s in sizes),
        branches=None))
    names = ['branched', 'all_shared'] + sorted(
        k for k in job.results if k.startswith('random/'))
    for name in names:
        result = job.results[name]
        metrics = {keys[t]: result['metrics'][keys[t]] for t in tasks}
        rows.append(dict(model=name, metrics=metrics,
                         delta_m=_delta_m(metrics, reference, lower),
                         branches=result.get('branches'),
                         **measure(name)))
    return rows, keys


def _delta_m(metrics: dict, reference: dict, lower: list) -> float:
    try:
        return delta_m(metrics, reference, lower)
    except ValueError:
        # a single-task reference of 0 (e.g. a tiny smoke run): undefined
        return float('nan')


def _fmt_delta(value: float) -> str:
    """Δm in % with its sign; ``n/a`` where it is undefined (see
    :func:`delta_m_notes`), never ``+nan``."""
    return 'n/a' if math.isnan(value) else f'{value:+.2f}'


def delta_m_notes(rows: List[dict], keys: Dict[str, str],
                  tasks: List[str]) -> List[str]:
    """Why a Δm is ``n/a``: a single-task reference of 0, which Δm (a
    relative change) divides by."""
    single = next((r for r in rows if r['model'] == 'single-task (all)'),
                  None)
    if single is None:
        return []
    zero = [t for t in tasks if single['metrics'].get(keys[t]) == 0]
    if not zero:
        return []
    return [
        f'- Δm n/a: the single-task model of `{t}` scored 0 on `{keys[t]}` '
        'in the test, and Δm is the change relative to it (it divides by '
        'that value). Train the single-task models longer or check the '
        'task\'s data; the per-task metrics above are still valid.'
        for t in zero
    ]


def _table(rows: List[dict], keys: Dict[str, str], tasks: List[str]) -> str:
    head = ['model'] + [keys[t] for t in tasks] + [
        'Δm (%)', 'params (M)', 'GFLOPs/img', 'img/s (CPU)']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + ' --- |' * len(head)]
    for r in rows:
        cells = [r['model']] + [f'{r["metrics"][keys[t]]:.2f}' for t in tasks]
        cells += [_fmt_delta(r['delta_m']), f'{r["params"] / 1e6:.3f}',
                  f'{r["flops"] / 1e9:.4f}', f'{r["images_per_s"]:.0f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _plot_params_vs_delta_m(rows: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        kind = r['model'].split('/')[0]
        style = dict(branched=('tab:red', '*', 14),
                     random=('tab:gray', 'o', 7),
                     all_shared=('tab:blue', 's', 8)).get(
                         kind, ('tab:green', 'D', 8))
        ax.scatter(r['params'] / 1e6, r['delta_m'], c=style[0],
                   marker=style[1], s=style[2] ** 2, label=kind, zorder=3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.axhline(0, color='k', lw=0.5)
    ax.set_xlabel('parameters (M)')
    ax.set_ylabel('Δm vs single-task (%)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_probe_curves(job: Any, path: str) -> None:
    """Each single-task model's probe metric against iterations, one panel
    per task: dense tasks' metrics have their own units and scales (mIoU
    in %, depth RMSE in metres, normal angles in degrees ...)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    primary = dict(job.cfg.get('val_evaluator', {}).get('primary') or {})
    lower = set(_lower_is_better(job.cfg))
    tasks = list(job.tasks)
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows),
                             squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        curve = job.results[f'single_task/{task}'].get('curve') or []
        if curve:
            steps, scores = zip(*curve)
            # the stored score is negated for lower-is-better metrics (the
            # selection maximises it); plot the metric itself
            sign = -1.0 if task in lower else 1.0
            ax.plot(steps, [sign * s for s in scores], marker='o', ms=3)
        name = primary.get(task, 'score')
        ax.set_title(f'{task}: {name}'
                     f'{" (lower is better)" if task in lower else ""}',
                     fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis('off')
    fig.suptitle('single-task models on the probe split', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def convergence_lines(job: Any) -> List[str]:
    """One line per model: best probe score, at which step, and a warning
    where the score still rose over the last fifth of the schedule."""
    lines = []
    for name, result in job.results.items():
        curve = result.get('curve') or []
        if not curve:
            continue
        step, score = max(curve, key=lambda c: c[1])
        multi = not name.startswith('single_task/')
        line = (f'- `{name}`: best probe score {score:.2f}'
                f'{" (Δm, %)" if multi else ""} at iteration {step} of '
                f'{curve[-1][0]}')
        # from the curve, so that every report applies the current rule
        if still_improving([dict(step=c[0], score=c[1]) for c in curve],
                           curve[-1][0], delta_m=multi):
            line += (' — **WARNING: still improving over the last fifth of '
                     'its schedule (not converged)**')
        lines.append(line)
    return lines


def _alpha_text(job: Any, tree: dict) -> str:
    """With alpha and no budget: the sizes the alpha range reaches, the
    chosen tree's row marked (so the size alpha gave is seen among the
    others)."""
    rows = tree.get('alpha_sweep')
    if not rows:
        return ''
    lines = ['| alpha from | to | params (M) | groups per block |',
             '| --- | --- | --- | --- |']
    for r in rows:
        mark = ' **(chosen)**' if r.get('chosen') else ''
        lines.append(f'| {r["alpha_min"]:.4g} | {r["alpha_max"]:.4g} | '
                     f'{r["params"] / 1e6:.3f}{mark} | '
                     f'{"-".join(str(g) for g in r["groups"])} |')
    return (f"""
## The sizes alpha reaches

The tree was chosen with alpha `{job.alpha}` and no budget, so its size is
what that alpha gives. Every distinct tree over the range of alpha (the
same affinity and search; alpha sampled log-spaced up to the value from
which all-shared is optimal):

""" + '\n'.join(lines) + '\n' + (
        '' if any(r.get('chosen') for r in rows) else
        f'\nThe chosen tree ({tree.get("params", 0) / 1e6:.3f} M) lies '
        'between the sampled alphas.\n'))


def write_report(job: Any, affinity_path: Optional[str], tree: dict,
                 headline: Optional[bool] = True) -> str:
    """Write ``<work_dir>/report.md`` and its figures; print the headline.

    Args:
        job: The finished :class:`BranchJob`.
        affinity_path: Its affinity file; None where the method decided the
            tree without one (no affinity figures then).
        tree: The tree stage's record (``branches``, ``config``, ...).
        headline: Print the table and verdict through ``job.log``.

    Returns:
        The report's path.
    """
    tasks, wd = job.tasks, job.work_dir
    rows, keys = summarise(job)
    # kept for the summary over seeds (tools/branch.py --seeds)
    job.summary = dict(rows=rows, keys=keys)
    figs = dict(heatmaps=osp.join(wd, 'fig_affinity_heatmaps.png'),
                depth=osp.join(wd, 'fig_affinity_vs_depth.png'),
                tree=osp.join(wd, 'fig_tree.png'),
                tradeoff=osp.join(wd, 'fig_params_vs_delta_m.png'),
                curves=osp.join(wd, 'fig_probe_curves.png'),
                predictions=osp.join(wd, 'fig_predictions.png'))
    if affinity_path is not None:
        doc = load_affinity(affinity_path)
        plot_affinity_heatmaps(doc['affinity'], doc['tasks'], doc['blocks'],
                               figs['heatmaps'])
        plot_affinity_vs_depth(doc['affinity'], doc['tasks'],
                               doc['blocks'], figs['depth'])
        notes = ''.join(f'> {line}\n\n' for line in
                        job.decider.notes(job))
        affinity_text = f"""## Task affinity ({doc['method']})

{notes}![affinity heat maps]({osp.basename(figs['heatmaps'])})

![affinity against depth]({osp.basename(figs['depth'])})
"""
    else:
        affinity_text = f"""## The method's search

The tree was decided by the method `{job.affinity_method}` itself (no task
affinity); its search record: `{tree.get('search') or {}}`.
"""
    names = job.info['block_names']
    draw_tree(tree['branches'], figs['tree'], tasks, names,
              title='chosen tree')
    _plot_params_vs_delta_m(rows, figs['tradeoff'])
    _plot_probe_curves(job, figs['curves'])
    # the branched network on the first test images, beside ground truth
    branched_run = job.results['branched']
    plot_test_predictions(branched_run['config'], branched_run['checkpoint'],
                          figs['predictions'], num_images=PREDICTION_IMAGES,
                          title='branched network on test images')
    convergence = convergence_lines(job)

    table = _table(rows, keys, tasks)
    by = {r['model']: r for r in rows}
    branched, single = by['branched'], by['single-task (all)']
    randoms = [r for r in rows if r['model'].startswith('random/')]
    rand_mean = (sum(r['delta_m'] for r in randoms) / len(randoms)
                 if randoms else float('nan'))
    ratio = branched['params'] / single['params']
    random_text = (f'mean of {len(randoms)} random trees of the same size '
                   f'{_fmt_delta(rand_mean)}%' if randoms else
                   'no random trees (--random-trees 0)')
    verdict = [
        f'- parameters of the branched network: {ratio:.1%} of the '
        f'single-task models together',
        f'- Δm of the branched network: {_fmt_delta(branched["delta_m"])}%; '
        f'all-shared {_fmt_delta(by["all_shared"]["delta_m"])}%; '
        f'{random_text}',
    ] + delta_m_notes(rows, keys, tasks)
    settings = (f'affinity `{job.affinity_method}`, alpha '
                f'`{job.alpha}`, budget `{job.budget}`, search '
                f'`{job.method}` (top-n {job.top_n})')
    text = f"""# Branched multi-task network: report

Config: `{job.config}`  
Work dir: `{wd}`  
Tasks: {', '.join(tasks)}  
Settings: {settings}

Every number below comes from this run's own checkpoints: test-set metrics
(`tools/test.py` path), parameters and FLOPs from mmengine's complexity
analysis, throughput measured here on the CPU (batch of 32, inference).
Δm is against the single-task models' own test metrics. Every model trained
with the same schedule (seed {job.seed}) and kept its best checkpoint on the
probe split (the val loader, held out of training) by the same rule: the
single-task models by their metric, the multi-task ones by Δm against the
single-task models' best probe values. The test split was read once per
model, by this table.

## Results

{table}

{chr(10).join(verdict)}

## Predictions on test images

The branched network on the first {PREDICTION_IMAGES} test images: each
dense task's prediction above its ground truth, each class task's
predicted label with the true one under it (`tools/infer.py` draws the
same pictures for any image, docs/inference.md).

![predictions]({osp.basename(figs['predictions'])})

## Convergence (probe split)

{chr(10).join(convergence)}

![probe curves]({osp.basename(figs['curves'])})

## The chosen tree

```
{format_tree(tree['branches'], names)}
```

![tree]({osp.basename(figs['tree'])})

## Trees of the baselines

```
""" + '\n'.join(f"{r['model']}: " + ' / '.join(
        ' '.join('[' + ' '.join(g) + ']' for g in p) for p in r['branches'])
        for r in rows if r['branches']) + f"""
```

{affinity_text}{_alpha_text(job, tree)}
## Parameters against Δm

![parameters vs delta m]({osp.basename(figs['tradeoff'])})
"""
    path = osp.join(wd, 'report.md')
    write_text_atomic(text, path)
    if headline:
        warnings = [line for line in convergence if 'WARNING' in line]
        job.log('\n' + table + '\n' + '\n'.join(verdict + warnings))
    return path
