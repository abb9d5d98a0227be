"""What :mod:`branched_mtl.pipeline.compare` writes: the summary over seeds
(``comparison.json``), its table (``comparison.md``) and the Δm against
parameters plot (``comparison.png``); and the Δm and mean ± std helpers the
projects' own comparison tools share with it."""
import math
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from branched_mtl.evaluation.paired_stats import (mean_ci, median_per_seed,
                                                  paired_difference, win_rate)
from .branch import BranchJob
from .methods import method_label, method_marker
from .report import _delta_m, _lower_is_better, primary_keys



# ---------------------------------------------------------------- Δm, stats
def primary_reference(single: Mapping[str, Mapping[str, float]],
                      tasks: Sequence[str],
                      primary: Optional[Dict[str, str]] = None
                      ) -> Tuple[Dict[str, str], Dict[str, float]]:
    """Each task's primary metric and its single-task model's value, the
    reference of every Δm.

    Args:
        single: ``{task: metrics of the task's single-task model}``.
        tasks: The tasks.
        primary: The evaluator's ``primary`` ({task: metric name}).

    Returns:
        ``keys`` ({task: metric key}) and ``reference`` ({key: value}).
    """
    keys: Dict[str, str] = {}
    for t in tasks:
        keys.update(primary_keys(single[t], [t], primary))
    return keys, {keys[t]: single[t][keys[t]] for t in tasks}


def lower_keys(cfg: Config, keys: Dict[str, str]) -> List[str]:
    """The primary metric keys of the test evaluator's
    ``lower_is_better`` tasks (Δm's sign flips for them)."""
    return [keys[t] for t in _lower_is_better(cfg)]


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample std and count of ``values`` (e.g. one per seed)."""
    arr = np.asarray(values, float)
    # sample std (ddof=1): the spread of the seeds
    return dict(mean=float(arr.mean()),
                std=float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                n=int(len(arr)))


def delta_m_reference(per_seed: Mapping[Any, Mapping[str, Any]],
                      tasks: Sequence[str], cfg: Config
                      ) -> Tuple[Dict[str, str], List[str],
                                 Dict[Any, Dict[str, float]]]:
    """What every Δm of a comparison is measured against.

    Args:
        per_seed: ``{seed: {method: record}}`` with each seed's
            ``single_task`` record.
        tasks: The tasks.
        cfg: The config (its test evaluator's ``primary`` and
            ``lower_is_better``).

    Returns:
        ``keys`` ({task: primary metric key}), ``lower`` (the keys whose
        Δm sign flips) and ``reference`` ({seed, as in ``per_seed``: {key:
        the single-task model's value}}).
    """
    primary = dict(cfg.get('test_evaluator', {}).get('primary') or {})
    first = per_seed[next(iter(per_seed))]['single_task']['models']
    keys, _ = primary_reference(
        {t: first[f'single_task/{t}']['metrics'] for t in tasks}, tasks,
        primary)
    # unlike lower_keys: an entry that names no task is left out
    lower = [keys[t] for t in _lower_is_better(cfg) if t in keys]
    reference = {}
    for seed, rec in per_seed.items():
        models = rec['single_task']['models']
        reference[seed] = {keys[t]: float(models[f'single_task/{t}'][
            'metrics'][keys[t]]) for t in tasks}
    return keys, lower, reference


def model_delta_m(model: Mapping[str, Any], keys: Mapping[str, str],
                  reference: Mapping[str, float], lower: List[str]) -> float:
    """One measured model's Δm (%) against one seed's ``reference``."""
    return _delta_m({k: float(model['metrics'][k]) for k in keys.values()},
                    reference, lower)


# ---------------------------------------------------------------- summary
def _main_model(method: str, record: Dict[str, Any]) -> Dict[str, Any]:
    """A method's model of a seed: its tree, or the network it derived
    (``model``) where it is not a tree."""
    models = record['models']
    if method == 'all_shared':
        return models['all_shared']
    return models['tree'] if 'tree' in models else models['model']


def summarise(per_seed: Dict[int, Dict[str, Any]], methods: Sequence[str],
              job: BranchJob, random_trees: int) -> Dict[str, Any]:
    """Mean and std over seeds of each row: the methods' models and the
    mean of each tree's random trees.

    Args:
        per_seed: ``{seed: {method: record}}`` of :class:`Comparison`.
        methods: The methods run.
        job: A seed's shared job (tasks, evaluator settings).
        random_trees: R.

    Returns:
        ``tasks``, ``keys`` (each task's primary metric), ``rows`` (label,
        method, per-seed values and mean/std of every column) and
        ``failed`` ({method: {seed: reason}}).
    """
    tasks = job.tasks
    keys, lower, reference = delta_m_reference(per_seed, tasks, job.cfg)
    rows: List[Dict[str, Any]] = []
    failed: Dict[str, Dict[str, str]] = {}

    def values_of(seed_models: Dict[int, List[dict]], reference: Dict[
            int, dict], combine: bool = False) -> Dict[str, List[float]]:
        """Per seed: the mean over that seed's models (R random trees) or,
        with ``combine``, the single-task models side by side."""
        vals: Dict[str, List[float]] = {k: [] for k in (
            'delta_m', 'params', 'flops', 'images_per_s',
            *[keys[t] for t in tasks])}
        for seed, models in seed_models.items():
            if combine:
                by = {m['task']: m for m in models}
                metrics = {keys[t]: by[t]['metrics'][keys[t]] for t in tasks}
                vals['params'].append(sum(m['params'] for m in models))
                vals['flops'].append(sum(m['flops'] for m in models))
                # all of them on each image
                vals['images_per_s'].append(
                    1.0 / sum(1.0 / m['images_per_s'] for m in models))
                vals['delta_m'].append(0.0)
                for k, v in metrics.items():
                    vals[k].append(float(v))
                continue
            ms = [{keys[t]: float(m['metrics'][keys[t]]) for t in tasks}
                  for m in models]
            for k in (keys[t] for t in tasks):
                vals[k].append(float(np.mean([m[k] for m in ms])))
            vals['delta_m'].append(float(np.mean(
                [_delta_m(m, reference[seed], lower) for m in ms])))
            for k in ('params', 'flops', 'images_per_s'):
                vals[k].append(float(np.mean([m[k] for m in models])))
        return vals

    def add_row(label: str, method: str, kind: str,
                seed_models: Dict[int, List[dict]], cost: Dict[int, Any],
                combine: bool = False) -> None:
        if not seed_models:
            return
        vals = values_of(seed_models, reference, combine)
        row = dict(label=label, method=method, kind=kind,
                   seeds=sorted(seed_models), values=vals,
                   stats={k: mean_std(v) for k, v in vals.items()})
        if not combine:
            # every model's own Δm per seed: the paired statistics pair a
            # method with each random tree of its seed, not with their mean
            row['delta_m_models'] = {seed: [
                model_delta_m(m, keys, reference[seed], lower)
                for m in models] for seed, models in seed_models.items()}
        if cost:
            row['cost'] = {seed: c for seed, c in cost.items()}
            row['stats'].update(
                search_wall_s=mean_std([c['wall_s'] for c in cost.values()]),
                search_cpu_s=mean_std([c['cpu_s'] for c in cost.values()]),
                search_gpu_s=mean_std([c['gpu_s'] for c in cost.values()]))
            row['cost_missing'] = sorted({m for c in cost.values()
                                          for m in c['missing']})
            row['devices'] = sorted({d for c in cost.values()
                                     for d in c['devices']})
        rows.append(row)

    for method in methods:
        ok = {s: rec[method] for s, rec in per_seed.items()
              if rec.get(method, {}).get('status') == 'done'}
        for s, rec in per_seed.items():
            if rec.get(method, {}).get('status') == 'failed':
                failed.setdefault(method, {})[s] = rec[method]['reason']
        if method == 'single_task':
            add_row(method_label(method), method, 'single', {
                s: [dict(m, task=name.split('/', 1)[1])
                    for name, m in r['models'].items()]
                for s, r in ok.items()}, {}, combine=True)
            continue
        add_row(method_label(method), method, 'method',
                {s: [_main_model(method, r)] for s, r in ok.items()},
                {s: r['cost'] for s, r in ok.items() if r.get('cost')})
        randoms = {s: [m for name, m in r['models'].items()
                       if name.startswith('random/')]
                   for s, r in ok.items()}
        randoms = {s: m for s, m in randoms.items() if m}
        if randoms:
            add_row(f'random, size of {method_label(method)}', method,
                    'random', randoms, {})
    return dict(tasks=tasks, keys=keys, lower_is_better=lower, rows=rows,
                failed=failed, random_trees=random_trees,
                paired=paired_statistics(rows))


def paired_statistics(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The claims, per method, as paired statistics over seeds.

    Args:
        rows: :func:`summarise`'s rows (with ``delta_m_models``).

    Returns:
        ``{method: dict(delta_m, vs_random_median, random_win_rate,
        random_trees, vs_all_shared)}``: Δm's mean and 95 % bootstrap
        interval; the paired difference to the median random tree of the
        same seed (its interval and verdict); the fraction of (seed, random
        tree) pairs the method wins; the random trees per seed; the paired
        difference to all-shared.
    """
    def per_seed(row: Dict[str, Any]) -> Dict[int, float]:
        # a method row holds one model per seed
        return {int(s): float(v[0]) for s, v in row['delta_m_models'].items()}

    methods = [r for r in rows if r['kind'] == 'method']
    shared = next((per_seed(r) for r in methods
                   if r['method'] == 'all_shared'), None)
    out: Dict[str, Any] = {}
    for row in methods:
        mine = per_seed(row)
        entry: Dict[str, Any] = dict(delta_m=mean_ci(list(mine.values())),
                                     per_seed=mine)
        random = next((r for r in rows if r['kind'] == 'random'
                       and r['method'] == row['method']), None)
        if random is not None:
            others = {int(s): [float(x) for x in v]
                      for s, v in random['delta_m_models'].items()}
            entry.update(
                vs_random_median=paired_difference(mine,
                                                   median_per_seed(others)),
                random_win_rate=win_rate(mine, others),
                random_trees={s: len(v) for s, v in others.items()})
        if shared is not None and row['method'] != 'all_shared':
            entry['vs_all_shared'] = paired_difference(mine, shared)
        out[row['method']] = entry
    return out


def _ci_text(stat: Optional[Dict[str, Any]]) -> str:
    if not stat or stat.get('mean') is None:
        return '—'
    text = f'{stat["mean"]:+.2f}'
    if stat.get('low') is not None:
        text += f' [{stat["low"]:+.2f}, {stat["high"]:+.2f}]'
    return text


# the fewest paired seeds a verdict ("better", "worse") rests on
MIN_SEEDS_FOR_VERDICT = 5


def paired_markdown(paired: Dict[str, Any]) -> str:
    """The paired table of :func:`paired_statistics`, with verdicts."""
    head = ['method', 'Δm (%) [95 % CI]', 'vs median random tree',
            'wins vs random trees', 'vs all-shared', 'seeds']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    words = {1: 'better', -1: 'worse', 0: 'no difference shown'}
    for method, p in paired.items():
        rate = p.get('random_win_rate')
        cells = [method_label(method), _ci_text(p['delta_m']),
                 _ci_text(p.get('vs_random_median')),
                 '—' if rate is None else f'{100 * rate:.0f} %',
                 _ci_text(p.get('vs_all_shared')),
                 str(p['delta_m']['n'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    verdicts = []
    for method, p in paired.items():
        parts = []
        for key, what in (('vs_random_median',
                           'vs the random trees of its size'),
                          ('vs_all_shared', 'vs all-shared')):
            if key not in p:
                continue
            n = p[key].get('n', p['delta_m']['n'])
            if n < MIN_SEEDS_FOR_VERDICT:
                # two or three seeds give a bootstrap interval that only
                # spans the seeds themselves: no claim rests on it
                parts.append(f'{what}: no verdict ({n} seed(s); a claim '
                             f'needs {MIN_SEEDS_FOR_VERDICT})')
            else:
                parts.append(f'{what}: ' + words[p[key]['beyond_interval']])
        if parts:
            verdicts.append(f'- {method_label(method)}: '
                            + '; '.join(parts))
    return '\n'.join(lines + [''] + verdicts)


def format_stat(stat: Dict[str, float], digits: int = 2,
                sign: bool = False, std_digits: Optional[int] = None) -> str:
    """``mean ± std`` of a :func:`mean_std` (the mean alone for one value;
    ``n/a`` for an undefined mean).

    Args:
        stat: ``mean``, ``std`` and ``n``.
        digits: Decimals of the mean (and of the std by default).
        sign: Write the mean's sign (Δm).
        std_digits: Decimals of the std, when not ``digits``.
    """
    if math.isnan(stat['mean']):
        return 'n/a'
    fmt = f'{{:{"+" if sign else ""}.{digits}f}}'
    text = fmt.format(stat['mean'])
    if stat['n'] > 1:
        std = digits if std_digits is None else std_digits
        text += f' ± {stat["std"]:.{std}f}'
    return text


def comparison_markdown(summary: Dict[str, Any], png: str) -> str:
    """``comparison.md``: the table, the failures, how it was measured."""
    tasks, keys = summary['tasks'], summary['keys']
    head = (['method', 'Δm (%)'] + [keys[t] for t in tasks] +
            ['params (M)', 'GFLOPs/img', 'img/s (CPU)', 'search wall (s)',
             'search CPU (s)'])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    gpu = any(r.get('stats', {}).get('search_gpu_s', {}).get('mean', 0) > 0
              for r in summary['rows'])
    if gpu:
        head.append('search GPU (s)')
        lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in summary['rows']:
        st = r['stats']
        cells = [r['label'], '0 (reference)' if r['kind'] == 'single' else
                 format_stat(st['delta_m'], sign=True)]
        cells += [format_stat(st[keys[t]]) for t in tasks]
        cells += [f'{st["params"]["mean"] / 1e6:.3f}',
                  f'{st["flops"]["mean"] / 1e9:.4f}',
                  f'{st["images_per_s"]["mean"]:.0f}']
        if 'search_wall_s' in st:
            cells += [format_stat(st['search_wall_s'], 0),
                      format_stat(st['search_cpu_s'], 0)]
            if gpu:
                cells.append(format_stat(st['search_gpu_s'], 0))
        else:
            cells += ['—', '—'] + (['—'] if gpu else [])
        lines.append('| ' + ' | '.join(cells) + ' |')
    notes = []
    for r in summary['rows']:
        if r.get('cost_missing'):
            notes.append(f'- {r["label"]}: search cost leaves out '
                         f'{", ".join(r["cost_missing"])} (finished by a '
                         'run that did not measure it)')
    for method, reasons in summary['failed'].items():
        for seed, reason in reasons.items():
            notes.append(f'- **{method_label(method)} failed** (seed '
                         f'{seed}): {reason}')
    devices = sorted({d for r in summary['rows'] for d in r.get(
        'devices', [])})
    gpu_note = '; GPU seconds: wall time on one GPU' if gpu else ''
    budget = summary.get('budget')
    size = (f'budget `{budget}`' if budget is not None
            else f'alpha `{summary.get("alpha")}` (no budget)')
    return f"""# Comparison of ways to decide what layers to share

Config: `{summary.get('config')}`  
Seeds: {', '.join(str(s) for s in summary.get('seeds', []))}; size:
{size}; random trees per tree: {summary['random_trees']}

Test-set metrics and Δm (against the same seed's single-task models),
mean ± sample std over the seeds. Every model trained from scratch with the
config's schedule and seed, kept its best checkpoint on the probe split
(MultiTaskMetric's score: Δm against the single-task models' best probe
values for multi-task models) and read the test split once. Parameters and
FLOPs per image from mmengine's complexity analysis; img/s measured on this
machine's CPU (batch of 32, inference). "random, size of X": the mean of X's
random trees (same number of groups per block, so the same size) per seed.
A method whose network is not a tree (a derived network, e.g. a policy
that skips blocks) has no random trees.

Search cost: seconds spent deciding the architecture, wall and CPU (this
process and its finished subprocesses){gpu_note}:
the single-task models + affinity + tree search for the RSA and tournament
trees (the tournament's affinity is its recombination sweep), the TAG run +
tree search for TAG, a method's own search (a supergraph, a policy) for
the others.
The retraining of the result is not search cost. Measured on:
{', '.join(devices) or 'n/a'}.

{chr(10).join(lines)}

{chr(10).join(notes)}

## Paired over seeds

Differences are paired by seed (the same data order and single-task
references), with 95 % bootstrap intervals (scipy, BCa) over the seeds; a
verdict says "better" or "worse" only where the whole interval is on one side
of 0. "vs median random tree": the method's Δm minus the median Δm of the
random trees of its size (relabellings of its tree) of the same seed.

{paired_markdown(summary.get('paired') or {})}

![Δm against parameters]({osp.basename(png)})
"""




def plot_comparison(summary: Dict[str, Any], path: str) -> None:
    """Δm against parameters: a marker per method, error bars over seeds
    (random trees: hollow markers of their tree's colour)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in summary['rows']:
        st = r['stats']
        if math.isnan(st['delta_m']['mean']):
            continue
        colour, marker = method_marker(r['method'])
        random = r['kind'] == 'random'
        ax.errorbar(st['params']['mean'] / 1e6, st['delta_m']['mean'],
                    xerr=st['params']['std'] / 1e6,
                    yerr=st['delta_m']['std'], fmt=marker, color=colour,
                    markersize=9 if marker != '*' else 13,
                    markerfacecolor='none' if random else colour,
                    capsize=3, label=r['label'], zorder=3)
    ax.axhline(0, color='k', lw=0.5)
    ax.set_xlabel('parameters (M)')
    ax.set_ylabel('Δm vs single-task (%)')
    ax.set_title('mean ± std over seeds')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
