"""The tree builder (step 4) as library functions.

From an affinity (a file or its loaded document), a description of the
model's blocks and the base config, :func:`build_tree` chooses how the
encoder's blocks are shared (the tree of least cost
C = sum_l C_clustering^l + alpha * C_complexity^l, optionally within a
:class:`~.budget.Budget` of parameters or FLOPs per image), writes the new
config (which inherits the base and sets only ``model.encoder.branches``)
and a drawing, and returns the tree with the tables ``tools/build_tree.py``
prints. :func:`sweep_alpha` gives the trees over a range of alpha;
TAG's own selection instead of the search is
:func:`branched_mtl.tree.tag_builder.build_tag_tree`.

Nothing here prints, and nothing builds the model: the block description
(:class:`~.problem.ModelBlocks`) comes from
:func:`branched_mtl.models.describe.describe_tree_blocks`, which knows
models (this layer does not import them).
"""
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from numbers import Integral
from typing import Any, Dict, List, Optional, Tuple

from .branches import (Branches, all_shared, count_tree_params, format_tree,
                       fully_separate)
from .budget import Budget
from .config_writer import write_tree_config
from .cost import tree_cost_breakdown
from .draw import draw_tree
from .flops import count_tree_flops, format_flops
from .problem import (AffinityLike, BlocksLike, ModelBlocks, PathLike,
                      TreeProblem, check_unmeasured, load_problem)
from .search import search_tree
from .tradeoff import alpha_sweep

__all__ = ['TreeResult', 'SweepResult', 'build_tree', 'sweep_alpha']

@dataclass
class TreeResult:
    """A built tree.

    Attributes:
        branches: The tree: one partition of the tasks per block.
        cost: Its cost C (None for TAG's selection, which has none).
        params: Its parameters.
        flops: Its FLOPs per image, or None when they were not counted.
        config: The config written, or None.
        png: The drawing written, or None.
        text: The tables ``tools/build_tree.py`` prints, one string (the
            note about layer names first when there is one).
        note: That note, or None.
        alpha: The alpha searched with (None for TAG's selection).
        selection: TAG's selection (``groups``, ``serving``, ``score``,
            ``sets``), None for the tree search.
    """
    branches: Branches
    cost: Optional[float]
    params: int
    flops: Optional[int]
    config: Optional[str]
    png: Optional[str]
    text: str
    note: Optional[str] = None
    alpha: Optional[float] = None
    selection: Optional[Dict[str, Any]] = field(default=None, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


@dataclass
class SweepResult:
    """The trees over a range of alpha (:func:`sweep_alpha`).

    Attributes:
        rows: One dict per distinct tree (see
            :func:`~.search.alpha_sweep`).
        text: The table, one string (the note about layer names first).
        note: That note, or None.
    """
    rows: List[dict]
    text: str
    note: Optional[str] = None


def _one_line(branches: Branches) -> str:
    return ' / '.join(' '.join('[' + ' '.join(g) + ']' for g in p)
                      for p in branches)


def sweep_alpha(affinity: AffinityLike,
                blocks: BlocksLike,
                config: PathLike,
                method: str = 'auto',
                top_n: int = 3) -> SweepResult:
    """The distinct trees over a range of alpha: the trade-off between
    parameters and clustering cost to choose alpha from.

    Args:
        affinity, blocks, config: as in :func:`load_problem`.
        method, top_n: as in :func:`build_tree`.

    Returns:
        The :class:`SweepResult` (rows and their table).

    Raises:
        ValueError: on an affinity that does not fit the model, or a bad
            method or top_n.
    """
    prob = load_problem(affinity, blocks, config)
    check_unmeasured(prob, None)
    b = prob.blocks
    rows = alpha_sweep(prob.affinity, prob.tasks, b.pools,
                       block_params=b.block_params,
                       head_params=b.head_params, method=method,
                       top_n=top_n)
    lines = _note(prob)
    lines.append('Trees over alpha (the trade-off to choose alpha from):')
    lines.append(f'{"alpha from":>11} {"to":>10} {"params":>12} '
                 f'{"clustering":>10} {"groups":>14}  tree (blocks shallow '
                 'to deep)')
    for r in rows:
        groups = '-'.join(str(len(p)) for p in r['branches'])
        lines.append(f'{r["alpha_min"]:>11.4g} {r["alpha_max"]:>10.4g} '
                     f'{r["params"]:>12,} {r["clustering"]:>10.4f} '
                     f'{groups:>14}  {_one_line(r["branches"])}')
    return SweepResult(rows=rows, text='\n'.join(lines), note=prob.note)


def _note(prob: TreeProblem) -> List[str]:
    return [prob.note] if prob.note else []


def _budget(budget: Any) -> Optional[Budget]:
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Integral) and not isinstance(budget, bool):
        return Budget(int(budget), 'params')
    raise TypeError(
        f'budget must be a Budget (read text with '
        f'branched_mtl.tree.budget.parse_size_budget) or a parameter count, '
        f'got {type(budget).__name__} {budget!r:.60}')


def _check_out(out: Optional[PathLike]) -> Optional[str]:
    if out is None:
        return None
    out = os.fspath(out)
    if not out.endswith('.py'):
        raise ValueError(f'the new config must be a .py file, got {out}')
    # before the search: a path that cannot be written is refused with its
    # reason, not at the end
    from branched_mtl.utils.paths import check_output_file
    check_output_file(out, 'the new config')
    return out


def _flops_line(blocks: ModelBlocks, tasks: List[str], branches: Branches,
                budget: Optional[Budget] = None
                ) -> Tuple[Optional[int], Optional[str]]:
    """The tree's FLOPs per image and their line, when they were counted."""
    if blocks.block_flops is None:
        return None, None
    num_blocks = len(blocks.block_names)

    def count(tree: Branches) -> int:
        return count_tree_flops(tree, blocks.block_flops, blocks.head_flops)

    flops = count(branches)
    shape = 'x'.join(str(s) for s in blocks.input_shape or ())
    line = (f'FLOPs per {shape} image: {flops:,} ({format_flops(flops)}; '
            f'all shared {format_flops(count(all_shared(tasks, num_blocks)))}'
            ', fully separate '
            f'{format_flops(count(fully_separate(tasks, num_blocks)))})'
            + (f', budget {budget.value:,}' if budget is not None else ''))
    return flops, line


def _write(out: Optional[str], config: str, draw: bool, branches: Branches,
           tasks: List[str], names: List[str], header: List[str],
           title: str, lines: List[str]) -> Tuple[Optional[str],
                                                  Optional[str]]:
    """The config (and drawing) of a tree; their lines go to ``lines``."""
    if out is None:
        return None, None
    write_tree_config(out, config, branches, tasks, header, names)
    lines.append(f'config: {out}')
    png = None
    if draw:
        png = osp.splitext(out)[0] + '.png'
        draw_tree(branches, png, tasks, names, title=title)
        lines.append(f'drawing: {png}')
    return out, png


def build_tree(affinity: AffinityLike,
               blocks: BlocksLike,
               config: PathLike,
               alpha: Optional[float] = None,
               budget: Optional[Budget] = None,
               method: str = 'auto',
               top_n: int = 3,
               out: Optional[PathLike] = None,
               draw: bool = True) -> TreeResult:
    """Choose the tree of least cost and write it as a config.

    Args:
        affinity: The affinity file's path, or its document (from
            :func:`read_affinity`).
        blocks: The model's blocks (:class:`ModelBlocks` from
            ``branched_mtl.models.describe.describe_tree_blocks``, or a
            dict of its fields); with FLOPs for a FLOPs budget.
        config: The base config the new one inherits.
        alpha: Weight of the complexity cost, >= 0 (default 0 with a
            budget).
        budget: The most parameters or FLOPs per image of the whole model,
            a :class:`~.budget.Budget` (a plain int counts parameters).
        method: ``'exact'``, ``'beam'`` or ``'auto'``.
        top_n: Partial trees the beam search keeps per block.
        out: The new config (``.py``) to write, or None to write nothing.
        draw: Also draw the tree beside ``out`` (``.png``).

    Returns:
        The :class:`TreeResult`: ``branches``, ``cost``, ``params``,
        ``flops`` (None unless ``blocks`` has FLOPs), ``config``, ``png``
        and ``text`` (the tree, the cost per block and the sizes).

    Raises:
        ValueError: on an affinity that does not fit the model, bad
            settings, a FLOPs budget without FLOPs, or a budget that no
            tree fits (nothing is written then).
        TypeError: on a budget that is not a Budget (text, a float).
    """
    budget = _budget(budget)
    if alpha is None and budget is None:
        raise ValueError('give alpha and/or a budget')
    flops_budget = budget is not None and budget.unit == 'flops'
    prob = load_problem(affinity, blocks, config)
    b, tasks, names = prob.blocks, prob.tasks, prob.blocks.block_names
    if flops_budget and b.block_flops is None:
        raise ValueError(
            f'a FLOPs budget ({budget.value:,} FLOPs per image) needs the '
            'blocks\' FLOPs: describe the model with flops=True')
    check_unmeasured(prob, budget)
    out = _check_out(out)
    config = os.fspath(config)
    alpha = alpha if alpha is not None else 0.0
    # a FLOPs budget: the same search over FLOPs of one copy of each block
    weights, heads = b.sizes('flops' if flops_budget else 'params')
    branches, cost = search_tree(
        prob.affinity, tasks, b.pools, alpha=alpha,
        budget=None if budget is None else budget.value,
        block_params=weights, head_params=heads, method=method,
        top_n=top_n, budget_unit='FLOPs' if flops_budget else 'parameters')
    bd = tree_cost_breakdown(branches, prob.affinity, tasks, b.pools, alpha)
    num_blocks = len(names)
    params = count_tree_params(branches, b.block_params, b.head_params)
    shared = count_tree_params(all_shared(tasks, num_blocks),
                               b.block_params, b.head_params)
    separate = count_tree_params(fully_separate(tasks, num_blocks),
                                 b.block_params, b.head_params)

    lines = _note(prob)
    lines.append('Tree (one line per block, shallow to deep):')
    lines.append(format_tree(branches, names))
    width = max(len(n) for n in list(names) + ['total'])
    lines.append(f'\n{"block":<{width}} {"p_l":>3} {"groups":>6} '
                 f'{"clustering":>10} {"complexity":>10} {"cost":>10}')
    for i, name in enumerate(names):
        clustering = (f'{"unmeasured":>10}' if i < prob.unmeasured else
                      f'{bd["clustering"][i]:>10.4f}')
        lines.append(f'{name:<{width}} {b.pools[i]:>3} '
                     f'{len(branches[i]):>6} {clustering} '
                     f'{bd["complexity"][i]:>10.0f} {bd["block"][i]:>10.4f}')
    if prob.unmeasured:
        lines.append(
            f'(the affinity measures {", ".join(names[prob.unmeasured:])} '
            'only: no tree within the budget branches above, so the '
            'shallower blocks are shared by every candidate and add '
            'nothing to its cost)')
    lines.append(f'{"total":<{width}} {"":>3} {"":>6} '
                 f'{bd["clustering_total"]:>10.4f} '
                 f'{bd["complexity_total"]:>10.0f} {cost:>10.4f}   '
                 f'(alpha = {alpha:g})')
    lines.append(f'\nparameters: {params:,} (all shared {shared:,}, fully '
                 f'separate {separate:,})'
                 + (f', budget {budget.value:,}'
                    if budget is not None and not flops_budget else ''))
    flops, line = _flops_line(b, tasks, branches,
                              budget if flops_budget else None)
    if line is not None:
        lines.append(line)

    header = [
        'Generated by tools/build_tree.py: the tree chosen from task '
        'affinities.',
        f'method={method} alpha={alpha:g} '
        f'budget={budget if budget is not None else "none"} '
        f'top_n={top_n} cost={cost:.6g} params={params}'
        + (f' flops={flops}' if flops is not None else ''),
    ]
    written, png = _write(out, config, draw, branches, tasks, names, header,
                          f'alpha={alpha:g}, {params / 1e6:.3g}M params',
                          lines)
    return TreeResult(branches=branches, cost=cost, params=params,
                      flops=flops, config=written, png=png,
                      text='\n'.join(lines), note=prob.note, alpha=alpha)
