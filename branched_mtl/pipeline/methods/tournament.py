"""The tournament: recombined networks (one task's encoder bottom, another
task's top) trained and scored on the probe samples, over a recombination
sweep run by ``tools/sweep_recombination.py`` (the paper's affinity)."""
import contextlib
import io
import os.path as osp
import sys
from typing import Any, List, Optional

from branched_mtl.affinity import load_affinity, save_affinity
from branched_mtl.registry import METHODS
from branched_mtl.tree.budget import shallowest_branch
from branched_mtl.tree.problem import ModelBlocks
from branched_mtl.utils.config import result_settings
from branched_mtl.utils.errors import UserError, short_repr
from ..steps import TOOLS, load_tool, run_step
from .base import AffinityMethod


def sweep_argv(job: Any) -> List[str]:
    """``branch.sweep`` as the options of tools/sweep_recombination.py
    (the cost cutters: mode, iters, data_fraction, ...)."""
    sweep = dict(job.settings.get('sweep') or {})
    sweep.setdefault('probe_samples', job.probe_settings().get('num_samples', 64))
    argv = []
    for key, value in sorted(sweep.items()):
        argv += [f'--{str(key).replace("_", "-")}', str(value)]
    return argv


def sweep_splits(job: Any) -> Optional[List[int]]:
    """The splits the tournament sweeps (numbers of frozen blocks).

    Under a size budget no tree branches above the shallowest block where
    a tree within the budget can branch
    (:func:`branched_mtl.tree.budget.shallowest_branch`): every candidate
    shares those blocks, so the affinity there cannot change the tree and
    the sweep skips its splits. At a tight budget that is most of the cost:
    the shallow splits retrain nearly the whole network. A budget sweep
    measures the splits of its widest budget, once per seed.

    Args:
        job: The stage runner: ``info`` (blocks and their parameters),
            ``budget`` and, in a budget sweep, ``affinity_budgets``.

    Returns:
        The splits ``l`` (affinity at block ``l - 1``), deep ones only, or
        None for every split (no budget, or one that can branch at the
        first block).
    """
    budgets = getattr(job, 'affinity_budgets', None) or [job.budget]
    if any(b is None for b in budgets):
        return None
    blocks = ModelBlocks.from_mapping(job.info)
    if any(b.unit == 'flops' for b in budgets):
        from branched_mtl.models.describe import add_block_flops
        blocks = add_block_flops(blocks, job.cfg)
    num = len(blocks.block_names)
    first = num - 1  # only all-shared fits: the deepest split still runs
    for budget in budgets:
        branch = shallowest_branch(*blocks.sizes(budget.unit), budget.value)
        first = min(first, num - 1 if branch is None else branch)
    return None if first == 0 else list(range(first + 1, num + 1))


@METHODS.register_module(name='tournament')
class TournamentMethod(AffinityMethod):
    """Tournament matrices of a recombination sweep (step 2, the paper's)."""
    label = 'tournament tree'
    marker = ('tab:purple', 'P')
    branch_keys = ('sweep',)

    def check(self, job: Any) -> None:
        """``branch.sweep`` parsed by the sweep tool itself, before any
        training: an unknown key or a bad value would otherwise stop the
        job after the single-task models."""
        sweep = job.settings.get('sweep') or {}
        if not isinstance(sweep, dict):
            raise UserError(f'branch.sweep must be a dict, got '
                            f'{short_repr(sweep)}')
        for key in ('splits', 'tasks'):
            if sweep.get(key) is not None:
                raise UserError(
                    f'branch.sweep.{key}={short_repr(sweep[key])}: the '
                    f'tournament affinity needs every {key[:-1]} (the tree '
                    'is chosen from the affinity at every block, of every '
                    'task); remove it')
        argv = ['config.py', '--work-dir', 'unused'] + sweep_argv(job)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                load_tool('sweep_recombination').parse_args(argv)
        except SystemExit:
            lines = err.getvalue().strip().splitlines()
            reason = lines[-1].split('error: ', 1)[-1] if lines else '?'
            raise UserError(f'branch.sweep: {reason}') from None

    def notes(self, job: Any) -> List[str]:
        """A sweep shorter than the paper's setting is flagged: its cut was
        validated on MultiDigits and failed at four of five splits.

        Args:
            job: The stage runner, its config loaded.

        Returns:
            One line when ``branch.sweep`` cuts the iterations or the
            data, none for the paper's setting.
        """
        sweep = dict(job.settings.get('sweep') or {})
        schedule = job.cfg.get('train_cfg', {}).get('max_iters')
        iters = sweep.get('iters')
        fraction = sweep.get('data_fraction')
        cut = []
        if iters is not None and schedule and int(iters) < int(schedule):
            cut.append(f'{iters} of the schedule\'s {schedule} iterations')
        if fraction is not None and float(fraction) < 1:
            cut.append(f'{float(fraction):.0%} of the training data')
        if not cut:
            return []
        return [
            'The recombined runs were shortened (' + ', '.join(cut) + '), '
            'not trained as the paper trains them. On MultiDigits such a '
            'cut ranked the task pairs worse than the paper\'s setting at '
            'four of five splits (docs/comparison.md, "Is the shortened '
            'tournament faithful?"): treat this affinity as a preview. '
            'Leaving `iters` and `data_fraction` out of `branch.sweep` '
            'runs the paper\'s setting; under a budget only the splits '
            'where a tree can branch are swept.']

    def inputs(self, job: Any) -> List[Any]:
        # the recombined runs train with the config; a budget may leave
        # out the shallow splits (the default, every split, keeps the
        # fingerprint it always had)
        splits = sweep_splits(job)
        return [job.config_text(), result_settings(job.settings.get('sweep'))
                ] + ([] if splits is None else [splits])

    def weight(self, job: Any) -> float:
        # the sweep's recombined runs over one single-task model's
        # iterations
        sweep = dict(job.settings.get('sweep', {}))
        num, nb = len(job.tasks), len(sweep_splits(job) or
                                      job.info['block_names'])
        runs = num * nb * (num if sweep.get('mode') == 'per-pair' else 1)
        iters = job.cfg.get('train_cfg', {}).get('max_iters') or 1
        return runs * float(sweep.get('iters', iters)) / iters

    def measure(self, job: Any, path: str, fp: str) -> None:
        if job.launcher == 'slurm':
            raise ValueError(
                'tournament affinity with --launcher slurm: run '
                'tools/sweep_recombination.py --launcher slurm, then '
                'rerun tools/branch.py once the array finished')
        sweep_dir = job.folder('affinity', 'sweep')
        cmd = [sys.executable, osp.join(TOOLS, 'sweep_recombination.py'),
               job.config, '--work-dir', sweep_dir,
               '--single-task-dir', job.folder('single_task')]
        # the sweep's cost cutters come from the config's branch.sweep
        # (checked in check)
        cmd += sweep_argv(job)
        splits = sweep_splits(job)
        if splits is not None:
            cmd += ['--splits', ','.join(str(s) for s in splits)]
        cmd += ['--cfg-options', f'randomness.seed={job.seed}']
        cmd += ['--gpus-per-job', str(job.gpus), '--launcher',
                'pytorch' if job.launcher == 'pytorch' else 'none']
        run_step('affinity (recombination sweep)', cmd, sweep_dir)
        doc = load_affinity(osp.join(sweep_dir, 'affinity_tournament.json'))
        save_affinity(path, doc['tasks'], doc['blocks'], 'tournament',
                      doc['affinity'], doc['meta'])
