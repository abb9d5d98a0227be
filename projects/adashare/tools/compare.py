"""AdaShare against the main job's trees: search, retrain, test, Δm.

    python projects/adashare/tools/compare.py CONFIG --reference REF \
        --work-dir DIR [--seeds 0 1 2] [--sparsity-weight W] \
        [--tree NAME=JSON ...]

Per seed S, in ``DIR/seed_S/``:

1. ``reference/single_task/<task>/``: the main job's single-task models of
   REF (branched_mtl's ``BranchJob`` stages, same config, seed and rule:
   trained, best probe checkpoint by MultiTaskMetric's score, test once);
   or, with ``--single-task-values JSON``, fixed reference values instead
   (used for both the probe Δm that picks the checkpoint and the test Δm);
2. ``search/``: the AdaShare search on CONFIG (``tools/search.py``);
3. ``adashare/``: ``search/adashare.py`` retrained from scratch with
   CONFIG's schedule, best probe checkpoint by Δm against the single-task
   models' best probe values (the main job's rule), test read once.

Δm on test is computed against that seed's single-task test values with
``branched_mtl.evaluation.delta_m`` (as the main job's report does);
parameters and FLOPs with ``branched_mtl.pipeline.measure.measure_model``
(mmengine's complexity analysis). ``--tree NAME=JSON`` adds the size of a
BranchedEncoder tree of REF (JSON: the ``branches`` list) to the table.
Writes ``DIR/compare.json`` and ``DIR/compare.md``.
"""
import argparse
import json
import os.path as osp
import sys
import warnings
from typing import Dict, List, Optional

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import branched_mtl  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402

from branched_mtl.evaluation import delta_m  # noqa: E402
from branched_mtl.pipeline.branch import BranchJob, config_text  # noqa
from branched_mtl.pipeline.compare_jobs import (  # noqa: E402
    measure_result,
    train_single_task)
from branched_mtl.pipeline.compare_report import (  # noqa: E402
    format_stat, lower_keys, mean_std, primary_reference)
from branched_mtl.pipeline.measure import input_shape  # noqa: E402
from branched_mtl.pipeline.selection import set_selection  # noqa: E402
from branched_mtl.pipeline.stages import fingerprint  # noqa: E402
from branched_mtl.utils import UserError, dump_json_atomic  # noqa: E402
from branched_mtl.utils import write_text_atomic  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from projects.adashare.adashare import AdaShareSearch  # noqa: E402


def single_task_models(job: BranchJob) -> None:
    """The main job's single-task stages (same configs, so the same
    fingerprints and models as ``tools/branch.py`` trains)."""
    for task in job.tasks:
        train_single_task(job, task, 'compare')


# AdaShare's own: fixed references stand in for the trained single-task models
def _fixed_references(job: BranchJob, text: str) -> Dict[str, float]:
    """``--single-task-values``: {task: value} of each task's primary
    metric, instead of training the single-task models here."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f'--single-task-values: not JSON: {e}') from None
    unknown = sorted(set(values) - set(job.tasks))
    missing = [t for t in job.tasks if t not in values]
    if unknown or missing:
        raise UserError(f'--single-task-values: unknown task(s) {unknown}, '
                        f'missing task(s) {missing}; the tasks are '
                        f'{job.tasks}')
    return {t: float(values[t]) for t in job.tasks}


def run_seed(args, seed: int) -> Dict:
    base = osp.join(osp.abspath(args.work_dir), f'seed_{seed}')
    job = BranchJob(args.reference, osp.join(base, 'reference'),
                    budget='100%', random_trees=0, seed=seed)
    primary_cfg = dict(job.cfg.get('val_evaluator', {}).get('primary')
                       or {})
    if args.single_task_values:
        fixed = _fixed_references(job, args.single_task_values)
        # the primary metric of each task: MultiTaskMetric's default one
        primary = {t: primary_cfg.get(t, 'accuracy/top1') for t in job.tasks}
        reference_probe = fixed
    else:
        single_task_models(job)
    search_dir = osp.join(base, 'search')
    record_path = osp.join(search_dir, 'search.json')
    if osp.isfile(record_path) and osp.isfile(
            osp.join(search_dir, 'adashare.py')):
        print(f'[compare] search: done earlier, {record_path}')
        with open(record_path) as f:
            record = json.load(f)
    else:
        cfg = Config.fromfile(args.config)
        if args.sparsity_weight is not None:
            cfg.adashare = dict(cfg.get('adashare') or {},
                                sparsity_weight=args.sparsity_weight)
        record = AdaShareSearch(cfg, search_dir, args.config, seed=seed).run()
    print('[compare] adashare: retrain from scratch')
    if args.single_task_values:
        ada_cfg = set_selection(Config.fromfile(record['config']),
                                reference_probe, primary)
    else:
        ada_cfg = job.select_multi_task(Config.fromfile(record['config']))
    result = job.train_and_test(
        'adashare', ada_cfg, osp.join(base, 'adashare'),
        fingerprint('adashare', seed, config_text(ada_cfg)),
        dict(policy=record['policy']))
    if args.single_task_values:
        keys = {t: f'{t}/{primary[t]}' for t in job.tasks}
        reference = {keys[t]: fixed[t] for t in job.tasks}
    else:
        keys, reference = primary_reference(
            {t: job.results[f'single_task/{t}']['metrics']
             for t in job.tasks}, job.tasks, primary_cfg)
    lower = lower_keys(job.cfg, keys)
    metrics = {keys[t]: result['metrics'][keys[t]] for t in job.tasks}
    size = measure_result(result, input_shape(job.cfg))
    return dict(seed=seed, single_task=reference, adashare=metrics,
                delta_m=delta_m(metrics, reference, lower),
                params=size['params'], flops=size['flops'],
                policy=record['policy'], search_cost=record['cost'],
                probe=result.get('probe'), checkpoint=result['checkpoint'])


def tree_sizes(args) -> Dict[str, Dict[str, float]]:
    cfg = Config.fromfile(args.reference)
    shape = input_shape(cfg)
    out = {}
    for item in args.tree or []:
        name, _, text = item.partition('=')
        try:
            branches = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f'--tree {name}: not a JSON tree: {e}') from None
        model = cfg.model.to_dict()
        model['encoder']['branches'] = branches
        out[name] = measure_size_branched(model, shape)
    return out


# not measure_model: an untrained model, no checkpoint and no throughput
def measure_size_branched(model_cfg: dict, shape) -> Dict[str, float]:
    """Parameters and FLOPs of a BranchedEncoder model (untrained: the size
    does not depend on the weights)."""
    from branched_mtl.pipeline.measure import model_size
    from branched_mtl.registry import MODELS
    return model_size(MODELS.build(model_cfg).eval(), tuple(shape))


def _ms(values: List[float], digits: int = 2, sign: bool = True) -> str:
    """``mean ± std`` over the seeds (the std always with two decimals)."""
    return format_stat(mean_std(values), digits, sign, std_digits=2)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the AdaShare (search) config')
    parser.add_argument('--reference', required=True,
                        help="the main job's config (single-task models)")
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--sparsity-weight', type=float)
    parser.add_argument(
        '--single-task-values',
        help='JSON {task: value}: fixed single-task references (both for '
        'the probe Δm that picks the checkpoint and for the test Δm) '
        'instead of training the single-task models')
    parser.add_argument('--tree', action='append',
                        help='NAME=JSON tree of REF to size (repeatable)')
    args = parser.parse_args(argv)
    try:
        trees = tree_sizes(args)
        rows = [run_seed(args, s) for s in args.seeds]
    except (UserError, FileNotFoundError) as e:
        print(f'compare: error: {e}', file=sys.stderr)
        return 2
    summary = dict(seeds=rows, trees=trees)
    dump_json_atomic(summary, osp.join(args.work_dir, 'compare.json'))
    tasks = list(rows[0]['adashare'])
    lines = ['| model | ' + ' | '.join(tasks) +
             ' | Δm (%) | params (M) | MFLOPs | search (s) |',
             '| --- ' * (len(tasks) + 5) + '|']
    for name, key in (('single-task', 'single_task'),
                      ('AdaShare', 'adashare')):
        cells = [_ms([r[key][t] for r in rows], sign=False) for t in tasks]
        dm = '0' if key == 'single_task' else _ms(
            [r['delta_m'] for r in rows])
        size = '' if key == 'single_task' else (
            f'{rows[0]["params"] / 1e6:.3f} | '
            f'{_ms([r["flops"] / 1e6 for r in rows], sign=False)} | '
            f'{_ms([r["search_cost"]["wall_s"] for r in rows], 0, False)}')
        lines.append(f'| {name} | ' + ' | '.join(cells) +
                     f' | {dm} | {size or " | | "} |')
    for name, s in trees.items():
        lines.append(f'| {name} (size only) | ' + ' | ' * len(tasks) +
                     f' | {s["params"] / 1e6:.3f} | {s["flops"] / 1e6:.2f} '
                     '| |')
    for r in rows:
        lines.append('')
        lines.append(f'seed {r["seed"]}: Δm {r["delta_m"]:+.2f}, policy ' +
                     '; '.join(f'{t} {"".join(map(str, p))}'
                               for t, p in r['policy'].items()) +
                     f'; search {r["search_cost"]["wall_s"]:.0f} s wall, '
                     f'{r["search_cost"]["cpu_s"]:.0f} s CPU on '
                     f'{r["search_cost"]["device"]}')
    text = '\n'.join(lines) + '\n'
    write_text_atomic(text, osp.join(args.work_dir, 'compare.md'))
    print(text)
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
