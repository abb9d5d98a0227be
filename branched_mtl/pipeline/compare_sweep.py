"""What a budget sweep of :mod:`branched_mtl.pipeline.compare` writes
beside each budget's summary: the Pareto figure (Δm against parameters and
against FLOPs, a line per method over the budgets, the random trees as a
band) and ``comparison.md`` with one paired table per budget."""
import os.path as osp
from typing import Any, Dict, List, Tuple

import numpy as np

from .compare_report import format_stat, paired_markdown
from .methods import method_label, method_marker

# methods drawn as lines; the references are single points
_REFERENCES = ('single_task', 'all_shared')


def _method_points(summary: Dict[str, Any], size: str
                   ) -> Dict[str, List[Tuple[float, float, float, float]]]:
    """Per method: (size, Δm mean, CI low, CI high), one per budget."""
    points: Dict[str, List[Tuple[float, float, float, float]]] = {}
    for budget in summary['budgets']:
        part = summary['by_budget'][budget]
        for row in part['rows']:
            if row['kind'] != 'method' or row['method'] in _REFERENCES:
                continue
            ci = part['paired'][row['method']]['delta_m']
            mean = ci['mean']
            low = mean if ci['low'] is None else ci['low']
            high = mean if ci['high'] is None else ci['high']
            points.setdefault(row['method'], []).append(
                (row['stats'][size]['mean'], mean, low, high))
    return points


def _random_band(summary: Dict[str, Any], size: str
                 ) -> List[Tuple[float, float, float, float]]:
    """Per budget: (mean size, median, first and third quartile) of the Δm
    of every random tree of every seed."""
    band = []
    for budget in summary['budgets']:
        rows = [r for r in summary['by_budget'][budget]['rows']
                if r['kind'] == 'random']
        values = [v for r in rows for vs in r['delta_m_models'].values()
                  for v in vs]
        if not values:
            continue
        x = float(np.mean([r['stats'][size]['mean'] for r in rows]))
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        band.append((x, float(med), float(q1), float(q3)))
    return sorted(band)


def _reference(summary: Dict[str, Any], method: str, size: str
               ) -> Tuple[float, float]:
    part = summary['by_budget'][summary['budgets'][0]]
    row = next(r for r in part['rows'] if r['method'] == method)
    return row['stats'][size]['mean'], row['stats']['delta_m']['mean']


def plot_pareto(summary: Dict[str, Any], path: str) -> None:
    """Δm against parameters and against FLOPs over the budgets.

    Args:
        summary: The budget sweep's summary (``by_budget``, ``budgets``).
        path: The PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, size, scale, label in ((axes[0], 'params', 1e6,
                                    'parameters (M)'),
                                   (axes[1], 'flops', 1e9, 'GFLOPs / image')):
        band = _random_band(summary, size)
        if band:
            xs = [b[0] / scale for b in band]
            ax.fill_between(xs, [b[2] for b in band], [b[3] for b in band],
                            color='0.8', label='random trees (quartiles)')
            ax.plot(xs, [b[1] for b in band], color='0.5', ls='--',
                    label='random trees (median)')
        for method, pts in _method_points(summary, size).items():
            pts = sorted(pts)
            colour, marker = method_marker(method)
            x = [p[0] / scale for p in pts]
            y = [p[1] for p in pts]
            err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
            ax.errorbar(x, y, yerr=err, fmt='-' + marker, color=colour,
                        capsize=3, label=method_label(method))
        for method in _REFERENCES:
            try:
                x, y = _reference(summary, method, size)
            except StopIteration:
                continue
            colour, marker = method_marker(method)
            ax.plot([x / scale], [y], marker, color=colour, markersize=10,
                    label=method_label(method))
        ax.axhline(0, color='k', lw=0.5)
        ax.set_xlabel(label)
        ax.set_ylabel('Δm vs single-task (%)')
        ax.grid(alpha=0.3)
    axes[0].set_title('mean and 95 % bootstrap interval over seeds')
    axes[1].legend(fontsize=7, loc='best')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_markdown(summary: Dict[str, Any], png: str) -> str:
    """``comparison.md`` of a budget sweep: per budget the sizes and the
    paired table with its verdicts."""
    parts = [f"""# Budget sweep: ways to decide what layers to share

Config: `{summary.get('config')}`  
Seeds: {', '.join(str(s) for s in summary['seeds'])}; budgets:
{', '.join(f'`{b}`' for b in summary['budgets'])}; random trees per tree:
up to {summary['random_trees']} (distinct relabellings of the tree: same
shape and size, other tasks together).

![Δm against size over the budgets]({osp.basename(png)})
"""]
    for budget in summary['budgets']:
        part = summary['by_budget'][budget]
        head = ['model', 'Δm (%)', 'params (M)', 'GFLOPs/img', 'seeds']
        lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
        for row in part['rows']:
            st = row['stats']
            lines.append('| ' + ' | '.join([
                row['label'], '0 (reference)' if row['kind'] == 'single'
                else format_stat(st['delta_m'], sign=True),
                f'{st["params"]["mean"] / 1e6:.3f}',
                f'{st["flops"]["mean"] / 1e9:.4f}',
                str(len(row['seeds']))]) + ' |')
        failed = [f'- **{method_label(m)} failed** (seed {s}): {reason}'
                  for m, reasons in part['failed'].items()
                  for s, reason in reasons.items()]
        parts.append(f"""## Budget `{budget}`

{chr(10).join(lines)}

Paired over seeds (95 % bootstrap intervals; "better"/"worse" only where
the whole interval is on one side of 0):

{paired_markdown(part['paired'])}
{chr(10).join(failed)}
""")
    return '\n'.join(parts)
