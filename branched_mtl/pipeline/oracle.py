"""The oracle at small scale: every distinct tree within a budget, trained
over the comparison's seeds, tells how far each method's tree is from the
best one (its rank and its regret).

The comparison runs first (references and methods, ``comparison.json``);
then every candidate of :func:`branched_mtl.tree.enumerate_trees` trains
with the same schedule, seed and checkpoint rule as every model of the
comparison, as a recorded stage of the seed (``seed_<s>/oracle/<tree hash>/``):
an interrupted oracle resumes, and nothing trains twice. ``oracle.json``
and ``oracle.md`` hold the candidates' Δm per seed and each method's rank
and paired regret; ``oracle.png`` draws them.
"""
import json
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from branched_mtl.evaluation.paired_stats import mean_ci
from branched_mtl.tree import canonical_tree, enumerate_trees, format_tree
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import dump_json_atomic, write_text_atomic
from branched_mtl.utils.lock import WorkDirLock
from .branch import BranchJob
from .compare import Comparison
from .compare_jobs import CostBook, measure_result, share_single_task
from .compare_report import delta_m_reference, model_delta_m
from .measure import input_shape
from .methods import method_label, method_marker
from .stage_runner import config_text
from .stages import fingerprint

__all__ = ['Oracle', 'oracle_summary', 'oracle_markdown', 'plot_oracle']


class Oracle(Comparison):
    """A :class:`Comparison` at one parameter budget plus every distinct
    tree within it, trained on every seed.

    Args:
        config: A multi-task config (few tasks: the candidates grow fast,
            561 trees of 4 tasks over 5 blocks without a budget).
        work_dir: Where the comparison and the candidates write.
        seeds: The seeds (the same for the methods and the candidates).
        budget: A parameter budget (``45%``, ``300K``).
        methods: The methods to rank (as :class:`Comparison`).
        random_trees: Random relabellings per method tree (0: none; the
            candidates include every relabelling within the budget).
        max_candidates: Refuse a budget with more candidates than this.
        cfg_options: As :class:`Comparison`.
        log: Where progress lines go.
    """

    def __init__(self, config: str, work_dir: str, seeds: Sequence[int],
                 budget: str, methods: Optional[Sequence[str]] = None,
                 random_trees: int = 0, max_candidates: int = 64,
                 cfg_options: Optional[dict] = None,
                 log: Callable[[str], None] = print) -> None:
        if budget is None:
            raise UserError('--budget: the oracle needs one parameter '
                            'budget')
        super().__init__(config, work_dir, seeds, budget=budget,
                         methods=methods, random_trees=random_trees,
                         cfg_options=cfg_options, log=log)
        # the candidates are known (and their number checked) before
        # anything trains
        with WorkDirLock(self.work_dir, option='--work-dir'):
            self._write_configs()
        job = self._shared_job(self.seeds[0])
        if job.params_budget is None:
            raise UserError(f'--budget {budget!r}: the oracle enumerates '
                            'trees by parameters; give a parameter budget')
        self.candidates = enumerate_trees(
            job.tasks, job.info['block_params'], job.params_budget,
            job.info['head_params'])
        if len(self.candidates) > max_candidates:
            raise UserError(
                f'--budget {budget}: {len(self.candidates)} trees fit it, '
                f'more than --max-candidates {max_candidates}; give a '
                'smaller budget or fewer tasks')

    def run(self) -> Dict[str, Any]:
        """The comparison, then every candidate on every seed; writes
        ``oracle.json`` and ``oracle.md``.

        Returns:
            The oracle's summary (``oracle.json``).
        """
        super().run()
        with open(osp.join(self.work_dir, 'comparison.json')) as f:
            per_seed = json.load(f)['per_seed']
        with WorkDirLock(self.work_dir, option='--work-dir'):
            trained: Dict[int, List[Dict[str, Any]]] = {}
            for i, seed in enumerate(self.seeds):
                self.log(f'[oracle] seed {seed} ({i + 1} of '
                         f'{len(self.seeds)}): {len(self.candidates)} '
                         'trees')
                job = self._shared_job(seed)
                trained[seed] = self._train_candidates(
                    job, per_seed[str(seed)])
            # (tasks, evaluator and blocks: the same for every seed's job)
            summary = oracle_summary(
                self.candidates, trained, per_seed, self.methods, job)
            summary.update(config=self.source, work_dir=self.work_dir,
                           budget=self.budget_text, seeds=self.seeds)
            dump_json_atomic(summary, osp.join(self.work_dir, 'oracle.json'))
            text = oracle_markdown(summary, job.info['block_names'])
            write_text_atomic(text, osp.join(self.work_dir, 'oracle.md'))
            plot_oracle(summary, osp.join(self.work_dir, 'oracle.png'))
            self.log(text)
            return summary

    def _train_candidates(self, shared: BranchJob, compared: Dict[str, Any]
                          ) -> List[Dict[str, Any]]:
        """Every candidate of one seed, measured: a tree the comparison
        has trained on this seed (all-shared, a method's tree or random
        tree: the same config, seed and schedule) is taken from it, the
        others train (or are found by their records); two at a time with
        ``branch.max_parallel=2``.

        Args:
            shared: The seed's job.
            compared: The seed's record in ``comparison.json``.

        Returns:
            The measured candidates in order, each with ``trained_as``: the
            comparison's model it is, or ``oracle``.
        """
        shape = input_shape(shared.cfg)
        known = _compared_trees(compared, shared.tasks)
        # the single-task models' probe values choose every checkpoint: the
        # comparison has just trained them (found, not trained again)
        share_single_task([shared], CostBook(self._seed_dir(shared.seed,
                                                            'compare')))
        stages = {}  # tree key -> the stage's train_and_test arguments
        for tree in self.candidates:
            key = _tree_key(tree, shared.tasks)
            if key in known:
                continue
            cfg = shared.with_tree(tree)
            canon = canonical_tree(tree, shared.tasks)
            # the tree itself names the model: another budget's oracle in
            # the same work dir finds the candidates it shares with this one
            tag = fingerprint('tree', canon)[:10]
            stages[key] = (f'oracle/{tag}', cfg, shared.folder('oracle', tag),
                           fingerprint('oracle', canon, shared.seed,
                                       config_text(cfg)),
                           dict(branches=tree))
        shared.train_ahead([s[:4] for s in stages.values()])
        try:
            trained = {key: dict(measure_result(shared.train_and_test(*s),
                                                shape), trained_as='oracle')
                       for key, s in stages.items()}
        finally:
            shared.stop_ahead()
        trained.update(known)
        return [trained[_tree_key(t, shared.tasks)] for t in self.candidates]


def _tree_key(tree: list, tasks: List[str]) -> str:
    """A tree as a dict key: equal trees (in any task order) give one."""
    return json.dumps(canonical_tree(tree, tasks))


def _compared_trees(compared: Dict[str, Any], tasks: List[str]
                    ) -> Dict[str, Dict[str, Any]]:
    """The trees the comparison trained on a seed, by canonical tree:
    ``{json of the tree: measured model with trained_as}``."""
    out: Dict[str, Dict[str, Any]] = {}
    for method, rec in compared.items():
        if not isinstance(rec, dict) or rec.get('status') != 'done':
            continue
        for name, model in rec.get('models', {}).items():
            if model.get('branches'):
                out.setdefault(
                    _tree_key(model['branches'], tasks),
                    dict(model, trained_as=(method if name == method
                                            else f'{method}/{name}')))
    return out


def oracle_summary(candidates: List[list],
                   trained: Dict[int, List[Dict[str, Any]]],
                   per_seed: Dict[str, Any], methods: Sequence[str],
                   job: BranchJob) -> Dict[str, Any]:
    """Candidates ranked by mean Δm over the seeds, and each method's tree
    placed among them.

    A method's rank on a seed is the rank (1: best; equal means share a
    rank) of the candidate equal to its tree of that seed, by the
    candidates' mean Δm over the seeds; its regret on a
    seed is the best candidate's Δm minus that candidate's Δm on the same
    seed (paired; 0 when it chose the best tree). A method's tree outside
    the candidates (over the budget, or not a tree) has no rank.

    Args:
        candidates: The trees, as :func:`enumerate_trees` gives them.
        trained: ``{seed: [measured candidate, ...]}`` in that order.
        per_seed: ``comparison.json``'s ``per_seed``.
        methods: The comparison's methods.
        job: A seed's job (tasks, evaluator settings).

    Returns:
        ``candidates`` (tree, params, Δm per seed and mean, rank), ``best``
        (index), ``methods`` ({method: per-seed index, rank, regret, and the
        regret's mean with a 95 % bootstrap interval}).
    """
    tasks = job.tasks
    keys, lower, reference = delta_m_reference(per_seed, tasks, job.cfg)
    seeds = sorted(trained)

    def dm(model: Dict[str, Any], seed: int) -> float:
        return model_delta_m(model, keys, reference[str(seed)], lower)

    rows = []
    for k, tree in enumerate(candidates):
        values = {s: dm(trained[s][k], s) for s in seeds}
        rows.append(dict(index=k, branches=tree,
                         params=int(trained[seeds[0]][k]['params']),
                         trained_as={s: trained[s][k].get('trained_as')
                                     for s in seeds},
                         delta_m=values,
                         mean=float(np.mean(list(values.values())))))
    # competition ranking: trees of equal mean Δm share the better rank
    for row in rows:
        row['rank'] = 1 + sum(r['mean'] > row['mean'] for r in rows)
    best = min(range(len(rows)), key=lambda k: (rows[k]['rank'], k))
    index = {_tree_key(t, tasks): k for k, t in enumerate(candidates)}
    out_methods: Dict[str, Any] = {}
    for method in methods:
        if method == 'single_task':
            continue
        picks: Dict[int, Any] = {}
        for s in seeds:
            rec = per_seed.get(str(s), {}).get(method) or {}
            if rec.get('status') != 'done':
                continue
            models = rec['models']
            model = models.get('all_shared') or models.get('tree')
            branches = (model or {}).get('branches')
            k = index.get(_tree_key(branches, tasks)) if branches else None
            picks[s] = dict(
                candidate=k, rank=None if k is None else rows[k]['rank'],
                regret=None if k is None else
                rows[best]['delta_m'][s] - rows[k]['delta_m'][s],
                # the method's own model (its tree's, or the network it
                # derived where that is no candidate)
                delta_m=None if model is None else dm(model, s))
        regrets = [p['regret'] for p in picks.values()
                   if p['regret'] is not None]
        out_methods[method] = dict(
            label=method_label(method), per_seed=picks,
            regret=mean_ci(regrets) if regrets else None,
            mean_rank=float(np.mean([p['rank'] for p in picks.values()
                                     if p['rank'] is not None]))
            if regrets else None,
            best_chosen=sum(p['rank'] == 1 for p in picks.values()))
    return dict(tasks=tasks, candidates=rows, best=best,
                num_candidates=len(rows), methods=out_methods)


def oracle_markdown(summary: Dict[str, Any],
                    block_names: Optional[Sequence[str]] = None) -> str:
    """The oracle as markdown: the methods' ranks and regrets, then every
    candidate by rank."""
    n = summary['num_candidates']
    best = summary['candidates'][summary['best']]
    lines = [f'# Oracle: {n} trees within {summary.get("budget")}', '',
             f'Seeds {summary.get("seeds")}. Best tree (mean Δm '
             f'{best["mean"]:+.2f} %):', '', '```',
             format_tree(best['branches'], block_names), '```', '',
             '| method | rank per seed (of %d) | mean rank | regret (points '
             'of Δm) [95 %% CI] | rank 1 chosen |' % n,
             '| --- | --- | --- | --- | --- |']
    for m in summary['methods'].values():
        ranks = ', '.join('-' if p['rank'] is None else str(p['rank'])
                          for _, p in sorted(m['per_seed'].items()))
        reg = m['regret']
        reg_text = ('n/a' if reg is None else
                    f'{reg["mean"]:.2f}' + (
                        '' if reg['low'] is None else
                        f' [{reg["low"]:.2f}, {reg["high"]:.2f}]'))
        mean_rank = ('n/a' if m['mean_rank'] is None
                     else f'{m["mean_rank"]:.1f}')
        lines.append(f'| {m["label"]} | {ranks} | {mean_rank} | {reg_text} '
                     f'| {m["best_chosen"]} of {len(m["per_seed"])} |')
    lines += ['', '| rank | mean Δm (%) | params | tree (groups per block) |',
              '| --- | --- | --- | --- |']
    for row in sorted(summary['candidates'],
                      key=lambda r: (r['rank'], r['index'])):
        groups = ' / '.join(' '.join('[' + ' '.join(g) + ']' for g in p)
                            for p in row['branches'])
        lines.append(f'| {row["rank"]} | {row["mean"]:+.2f} | '
                     f'{row["params"]:,} | {groups} |')
    return '\n'.join(lines) + '\n'


def plot_oracle(summary: Dict[str, Any], path: str) -> None:
    """Every candidate's Δm (mean and each seed) from best to worst, with
    the trees each method chose marked below them.

    Args:
        summary: :func:`oracle_summary`'s result.
        path: The PNG to write (atomically).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from branched_mtl.utils.io import open_atomic
    rows = sorted(summary['candidates'], key=lambda r: (r['rank'],
                                                        r['index']))
    place = {r['index']: i for i, r in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(rows) + 2), 4.2))
    ax.bar(range(len(rows)), [r['mean'] for r in rows], color='0.8',
           label='mean over seeds')
    for i, r in enumerate(rows):
        vals = list(r['delta_m'].values())
        ax.plot([i] * len(vals), vals, '.', color='0.35', ms=4)
    # the marks go below the bars (which start at 0) and the seeds' dots
    low = min(0.0, min(min(r['delta_m'].values()) for r in rows))
    span = max(1e-9, max(max(r['delta_m'].values()) for r in rows) - low)
    for j, (name, m) in enumerate(summary['methods'].items()):
        picks = [place[p['candidate']] for p in m['per_seed'].values()
                 if p['candidate'] is not None]
        if not picks:
            continue
        colour, marker = method_marker(name)
        ax.plot(picks, [low - span * (0.12 + 0.1 * j)] * len(picks),
                linestyle='none', marker=marker, color=colour, alpha=0.7,
                label=f'chosen by {m["label"]} (one mark per seed)')
    ax.axhline(0, color='k', lw=0.6)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([str(r['index']) for r in rows], fontsize=7)
    ax.set_xlabel('tree (index in oracle.json), best first')
    ax.set_ylabel('Δm (%)')
    ax.set_title(f'{summary["num_candidates"]} trees within '
                 f'{summary.get("budget")}, seeds {summary.get("seeds")}',
                 fontsize=9)
    ax.legend(fontsize=7, loc='upper right')
    fig.tight_layout()
    with open_atomic(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=120)
    plt.close(fig)
