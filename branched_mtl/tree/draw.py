"""A drawing of a tree (PNG).

matplotlib is imported inside the function and the figure is drawn on an Agg
canvas directly (no pyplot), so the process-wide backend is never changed.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

from .branches import Branches, tree_nodes, validate_branches

__all__ = ['leaf_order', 'draw_tree']


def _children(nodes) -> List[Dict[int, List[int]]]:
    out = []
    for b in range(1, len(nodes)):
        kids: Dict[int, List[int]] = {}
        for k, (parent, _) in enumerate(nodes[b]):
            kids.setdefault(parent, []).append(k)
        out.append(kids)
    return out


def leaf_order(branches: Branches) -> List[str]:
    """The tasks in an order that keeps every branch's tasks side by side."""
    nodes = tree_nodes(branches)
    kids = _children(nodes)
    order: List[str] = []

    def visit(b: int, k: int):
        if b == len(nodes) - 1:
            order.extend(nodes[b][k][1])
            return
        for c in kids[b].get(k, []):
            visit(b + 1, c)

    for k in range(len(nodes[0])):
        visit(0, k)
    return order


def draw_tree(branches: Branches,
              path: str,
              tasks: Optional[Sequence[str]] = None,
              block_names: Optional[Sequence[str]] = None,
              title: Optional[str] = None) -> str:
    """Draw the tree top-down: one row per block, task heads at the bottom.

    Args:
        branches: The tree (one partition per block).
        path: The PNG to write; folders are created.
        tasks: The task names (default: those of block 0).
        block_names: Row labels (default ``block0``, ``block1``, ...).
        title: A title over the drawing.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if tasks is None:
        tasks = [t for g in branches[0] for t in g]
    branches = validate_branches(branches, tasks, len(branches))
    num_blocks, n = len(branches), len(tasks)
    names = list(block_names) if block_names is not None else [
        f'block{b}' for b in range(num_blocks)]
    nodes = tree_nodes(branches)
    x_of = {t: i for i, t in enumerate(leaf_order(branches))}

    def node_xy(b: int, group: Sequence[str]) -> Tuple[float, float]:
        xs = [x_of[t] for t in group]
        return (min(xs) + max(xs)) / 2, -b

    width = max(5.0, 0.4 * n + 2.5)
    height = 0.6 * (num_blocks + 1) + 0.09 * max(len(t) for t in tasks) + 1.2
    fig = Figure(figsize=(width, height), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    heads_y = -num_blocks
    for b, level in enumerate(nodes):
        for parent, group in level:
            x, y = node_xy(b, group)
            if b > 0:
                px, py = node_xy(b - 1, nodes[b - 1][parent][1])
                ax.plot([px, x], [py, y], color='0.4', lw=1.2, zorder=1)
            if b == num_blocks - 1:
                for t in group:
                    ax.plot([x, x_of[t]], [y, heads_y], color='0.4', lw=1.2,
                            zorder=1)
            shared = len(group) > 1
            ax.scatter([x], [y], s=260, zorder=2,
                       color='tab:blue' if shared else 'tab:orange',
                       edgecolors='k', linewidths=0.6)
            ax.text(x, y, str(len(group)), ha='center', va='center',
                    fontsize=7, color='w', zorder=3)
    ax.scatter([x_of[t] for t in tasks], [heads_y] * n, marker='s', s=90,
               color='0.85', edgecolors='k', linewidths=0.6, zorder=2)
    order = leaf_order(branches)
    ax.set_xticks(range(n), order, rotation=90, fontsize=8)
    ax.tick_params(axis='x', length=0)
    ax.set_yticks([-b for b in range(num_blocks)] + [heads_y],
                  names + ['heads'])
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylim(heads_y - 0.5, 0.6)
    for side in ('top', 'right', 'bottom'):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
