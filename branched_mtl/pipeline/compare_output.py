"""A comparison's files: ``comparison.json`` (every value per seed),
``comparison.png`` (one budget: Δm against parameters; several: the Pareto
figure) and ``comparison.md`` (the tables, and where they apply the
planted groups and the affinities' separation)."""
import copy
import os
import os.path as osp
from typing import Any, Dict, Mapping, Tuple

from mmengine.config import Config

from branched_mtl.utils import dump_json_atomic, write_text_atomic
from .compare_affinity import separation_markdown
from .compare_planted import planted_markdown
from .compare_report import comparison_markdown, plot_comparison
from .compare_sweep import plot_pareto, sweep_markdown


def _dump(cfg: Config, path: str) -> None:
    text = cfg.pretty_text
    if osp.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return  # unchanged: keep the file (and its time)
    write_text_atomic(text, path)


def write_configs(cfg: Config, path: str, work_dir: str,
                  searches: Mapping[str, Tuple[str, Any]]) -> None:
    """Write the config every model trains with to ``path`` and, per
    method with search settings, ``<work_dir>/<method>_config.py`` (the
    same plus those settings under their key); unchanged files are kept.

    Args:
        cfg: The config without any method's search settings.
        path: Where it goes.
        work_dir: The comparison's folder.
        searches: ``{method: (config key, settings or None)}``.
    """
    os.makedirs(work_dir, exist_ok=True)
    _dump(cfg, path)
    for method, (key, settings) in searches.items():
        own = copy.deepcopy(cfg)
        if settings is not None:
            own[key] = settings
        _dump(own, osp.join(work_dir, f'{method}_config.py'))


def write_outputs(result: Dict[str, Any], work_dir: str,
                  labels: Mapping[str, str]) -> str:
    """Write the comparison's three files, each atomically.

    Args:
        result: The summary with ``per_seed`` (what ``comparison.json``
            holds); ``by_budget`` in it marks a budget sweep.
        work_dir: The comparison's folder.
        labels: Each method's name in tables.

    Returns:
        The markdown.
    """
    dump_json_atomic(result, osp.join(work_dir, 'comparison.json'))
    summary = {k: v for k, v in result.items() if k != 'per_seed'}
    png = osp.join(work_dir, 'comparison.png')
    if 'by_budget' not in summary:
        plot_comparison(summary, png)
        text = comparison_markdown(summary, png)
        if 'planted' in summary:
            text += '\n## Against the planted groups\n\n' + \
                planted_markdown(summary['planted'], labels) + '\n'
    else:
        plot_pareto(summary, png)
        text = sweep_markdown(summary, png)
        for b, part in summary['by_budget'].items():
            if 'planted' in part:
                text += (f'\n## Against the planted groups, budget `{b}`\n\n'
                         + planted_markdown(part['planted'], labels) + '\n')
    if summary.get('separation'):
        text += ('\n## Does each affinity separate the task pairs?\n\n'
                 + separation_markdown(summary['separation'], labels))
    write_text_atomic(text, osp.join(work_dir, 'comparison.md'))
    return text
