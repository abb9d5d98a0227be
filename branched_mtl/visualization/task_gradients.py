"""Figure of :func:`branched_mtl.evaluation.task_gradients.task_gradients`:
each task's share of the shared encoder's gradient and the cosines between
tasks per block."""
from typing import Any, Dict

import numpy as np


def plot_task_gradients(result: Dict[str, Any], path: str) -> None:
    """Shares (one bar group per checkpoint) and per-block cosine maps.

    Args:
        result: The tool's JSON (``tasks``, ``blocks``, ``share``,
            ``cosine`` and optionally ``per_checkpoint``).
        path: The PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tasks, blocks = result['tasks'], result['blocks']
    points = result.get('per_checkpoint') or [dict(result, checkpoint=None)]
    cols = len(blocks) + 1
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.4))
    ax = axes[0]
    width = 0.8 / len(points)
    for i, p in enumerate(points):
        label = (p['checkpoint'] or 'init').split('/')[-1]
        ax.bar(np.arange(len(tasks)) + i * width,
               [p['share'][t] for t in tasks], width, label=label)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2)
    ax.set_xticklabels(tasks, rotation=45, ha='right', fontsize=7)
    ax.set_ylabel('share of the gradient norm')
    ax.set_title('unit loss weights', fontsize=8)
    ax.legend(fontsize=6)
    for ax, block in zip(axes[1:], blocks):
        m = np.array([[result['cosine'][block][a][b] for b in tasks]
                      for a in tasks])
        im = ax.imshow(m, vmin=-1, vmax=1, cmap='RdBu_r')
        ax.set_xticks(range(len(tasks)))
        ax.set_yticks(range(len(tasks)))
        ax.set_xticklabels(tasks, rotation=90, fontsize=6)
        ax.set_yticklabels(tasks, fontsize=6)
        ax.set_title(f'cosine, {block}', fontsize=8)
    fig.colorbar(im, ax=list(axes[1:]), shrink=0.8)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)
