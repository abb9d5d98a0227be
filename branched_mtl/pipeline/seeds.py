"""The main job over several seeds (``tools/branch.py --seeds S``).

Each seed repeats everything that training randomness touches: the
single-task models, the affinity, the tree, the branched network and its
baselines (``<work_dir>/seed_<s>/``, a whole :class:`BranchJob` each, resumable
like one). The probe and test splits stay the same. ``<work_dir>/report.md``
then gives every task metric and Δm as mean +/- std over the seeds, each
seed's tree and whether they agree, and the repeatability of the affinity
(the fraction of pairs of task pairs that two seeds order alike, per split).
"""
import os.path as osp
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from branched_mtl.affinity import load_affinity, repeatability
from branched_mtl.affinity.repeatability import separation
from branched_mtl.tree import format_tree
from branched_mtl.utils import dump_json_atomic, write_text_atomic
from .branch import BranchJob

SINGLE = 'single-task (all)'


def _mean_std(values: Sequence[float]) -> str:
    arr = np.asarray(values, float)
    # sample std (ddof=1): the spread of the seeds, not of this draw
    std = arr.std(ddof=1) if len(arr) > 1 else 0.0
    return f'{arr.mean():.2f} ± {std:.2f}'


def _tree_text(branches: List) -> str:
    return ' / '.join(' '.join('[' + ' '.join(g) + ']' for g in p)
                      for p in branches)


def seed_rows(job: BranchJob) -> Dict[str, dict]:
    """One seed's models by kind: single-task, branched, all-shared and the
    mean of its random trees (metrics, Δm, parameters)."""
    rows = {r['model']: r for r in job.summary['rows']}
    out = {k: rows[k] for k in (SINGLE, 'branched', 'all_shared')}
    randoms = [r for name, r in rows.items() if name.startswith('random/')]
    if randoms:
        keys = randoms[0]['metrics']
        out['random (mean)'] = dict(
            model='random (mean)', params=randoms[0]['params'],
            delta_m=float(np.mean([r['delta_m'] for r in randoms])),
            metrics={k: float(np.mean([r['metrics'][k] for r in randoms]))
                     for k in keys})
    return out


def summarise_seeds(jobs: Sequence[BranchJob]) -> Dict[str, Any]:
    """Mean and spread over seeds, the trees, and the repeatability.

    Args:
        jobs: Finished :class:`BranchJob` s (one per seed, same config).

    Returns:
        ``models`` {kind: {metric: [per seed]}}, ``trees`` per seed,
        ``trees_agree``, ``repeatability`` (or None for one seed or two
        tasks), ``beats_random`` per seed.
    """
    per_seed = [seed_rows(job) for job in jobs]
    keys = jobs[0].summary['keys']
    tasks = jobs[0].tasks
    models: Dict[str, Dict[str, List[float]]] = {}
    for kind in per_seed[0]:
        values: Dict[str, List[float]] = {keys[t]: [] for t in tasks}
        values.update(delta_m=[], params=[])
        for rows in per_seed:
            row = rows[kind]
            for t in tasks:
                values[keys[t]].append(float(row['metrics'][keys[t]]))
            values['delta_m'].append(float(row['delta_m']))
            values['params'].append(float(row['params']))
        models[kind] = values
    trees = [job.results['branched']['branches'] for job in jobs]
    paths = [job.folder('affinity', 'affinity.json') for job in jobs]
    # a method that decides without an affinity leaves none
    affinities = ([load_affinity(p) for p in paths]
                  if all(osp.isfile(p) for p in paths) else [])
    rep = sep = None
    if len(jobs) > 1 and len(tasks) > 2 and affinities:
        rep = repeatability([a['affinity'] for a in affinities], tasks)
        sep = separation([a['affinity'] for a in affinities],
                         affinities[0]['blocks'])
    beats = [bool(rows['branched']['delta_m'] >
                  rows['random (mean)']['delta_m'])
             for rows in per_seed if 'random (mean)' in rows]
    return dict(seeds=[job.seed for job in jobs], tasks=tasks, keys=keys,
                models=models, trees=trees,
                trees_agree=all(t == trees[0] for t in trees),
                repeatability=rep, separation=sep, beats_random=beats,
                blocks=(affinities[0]['blocks'] if affinities
                        else list(jobs[0].info['block_names'])))


def seeds_report(summary: Dict[str, Any], jobs: Sequence[BranchJob]) -> str:
    """The markdown of the summary over seeds."""
    tasks, keys = summary['tasks'], summary['keys']
    head = ['model'] + [keys[t] for t in tasks] + ['Δm (%)', 'params (M)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for kind, values in summary['models'].items():
        cells = [kind] + [_mean_std(values[keys[t]]) for t in tasks]
        cells += [_mean_std(values['delta_m']) if kind != SINGLE else '0',
                  f'{np.mean(values["params"]) / 1e6:.3f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    names = jobs[0].info['block_names']
    trees = '\n'.join(
        f'seed {s}: {_tree_text(t)}'
        for s, t in zip(summary['seeds'], summary['trees']))
    rep = summary['repeatability']
    if rep is None:
        rep_text = 'needs two seeds, three tasks and an affinity'
    else:
        per_block = ', '.join(f'{n} {v:.1%}' for n, v in zip(
            summary['blocks'], rep['per_block']))
        rep_text = (f'**{rep["mean"]:.1%}** of the pairs of task pairs are '
                    f'ordered alike by two seeds (mean over splits and pairs '
                    f'of seeds; the paper reports 86.2 %); per split: '
                    f'{per_block}')
    sep = summary.get('separation')
    if sep is None:
        sep_text = ''
    else:
        cells = ', '.join(
            f'{n} {p["range"]:.3g} vs {p["spread"]:.3g}'
            + ('' if p['separates'] else ' (no)')
            for n, p in zip(summary['blocks'], sep['per_split']))
        flat = [summary['blocks'][i] for i in sep['flat']]
        sep_text = (
            '\n\nSeparation (range of the task pairs\' mean affinity '
            f'against {sep["factor"]:g}x their mean std over seeds), per '
            f'split: {cells}.' + (
                f'\n\n**WARNING: the affinity does not separate the task '
                f'pairs beyond the seeds\' spread at {", ".join(flat)}**: '
                'the tree\'s groups there are chosen by noise. Measure '
                'the affinity with more samples or a longer schedule '
                '(for the tournament: the single-task schedule, '
                'docs/comparison.md).' if flat else
                ' Every split separates its task pairs.'))
    beats = summary['beats_random']
    d = summary['models']
    verdict = (
        f'Δm of the branched network {_mean_std(d["branched"]["delta_m"])} '
        f'% against {_mean_std(d["random (mean)"]["delta_m"])} % for the '
        f'mean random tree of the same size; the branched tree beats it in '
        f'{sum(beats)} of {len(beats)} seeds.'
        if 'random (mean)' in d else '')
    return f"""# Branched multi-task network over {len(jobs)} seeds

Config: `{jobs[0].config}`  
Affinity: `{jobs[0].affinity_method}`, alpha `{jobs[0].alpha}`, budget
`{jobs[0].budget}`  
Seeds: {', '.join(str(s) for s in summary['seeds'])} (each in
`seed_<s>/`, with its own report)

Test-set metrics, mean ± std (sample std over the seeds); "random (mean)" is
the mean over each seed's random trees of the branched tree's size. Every
model kept its best checkpoint on the probe split.

{chr(10).join(lines)}

{verdict}

## Trees

Same tree in every seed: **{'yes' if summary['trees_agree'] else 'no'}**

```
{trees}
```

Seed {summary['seeds'][0]}'s tree by block:

```
{format_tree(summary['trees'][0], names)}
```

## Repeatability of the affinity

{rep_text}{sep_text}
"""


def run_seeds(make_job: Callable[[int, str], BranchJob], work_dir: str,
              seeds: Sequence[int],
              log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the main job once per seed, then write the summary.

    Args:
        make_job: ``(seed, work_dir) -> BranchJob``.
        work_dir: The parent work dir.
        seeds: The seeds, e.g. ``[0, 1, 2]``.
        log: Where progress lines go.

    Returns:
        The summary (also in ``<work_dir>/seeds.json`` and ``report.md``).
    """
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f'seeds must be distinct and non-empty, got '
                         f'{list(seeds)}')
    jobs = []
    for seed in seeds:
        log(f'[branch] seed {seed} ({len(jobs) + 1} of {len(seeds)})')
        job = make_job(seed, osp.join(work_dir, f'seed_{seed}'))
        job.run()
        jobs.append(job)
    summary = summarise_seeds(jobs)
    dump_json_atomic(summary, osp.join(work_dir, 'seeds.json'))
    path = osp.join(work_dir, 'report.md')
    text = seeds_report(summary, jobs)
    write_text_atomic(text, path)
    log(text)
    log(f'[branch] report over seeds: {path}')
    return summary
