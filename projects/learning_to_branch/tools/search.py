"""Learning to Branch: search a tree, write it as a config.

    python projects/learning_to_branch/tools/search.py CONFIG --work-dir DIR \
        [--budget 60%|2.1M | --flops-budget 60%|15M] [--size-weight W] \
        [--num-nodes K] [--iters N] [--warmup N] [--seed S] \
        [--cfg-options k=v ...]

CONFIG is any ``BranchedMultiTaskModel`` config of branched_mtl (its tree is
ignored). The supergraph over the blocks ``split_backbone`` gives for its
stock backbone trains with the config's optimiser on the train loader; the
architecture logits learn on the held-out probe part of the training data
(the config's val loader, never the test split). The tree is the argmax of
the logits (within the budget, if one is given), written to DIR/branched.py
by branched_mtl's safe config writer (it inherits CONFIG and sets only
``model.encoder.branches``), drawn to DIR/branched.png, and recorded with
the search cost in DIR/search.json. Retrain it with the stock tools:
``python tools/train.py DIR/branched.py``.

Search settings come from the config's ``ltb = dict(...)`` (see
``DEFAULTS``); the options here override them.
"""
import argparse
import copy
import math
import os
import os.path as osp
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if ROOT not in sys.path:  # `projects.learning_to_branch` from anywhere
    sys.path.insert(0, ROOT)

import branched_mtl  # noqa: E402,F401  (compat first; registers our types)
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from branched_mtl.apis.configs import config_tasks  # noqa: E402
from branched_mtl.apis.runner import train  # noqa: E402
from branched_mtl.apis.schedules import set_train_iters  # noqa: E402
from branched_mtl.apis.checks import check_multi_task_config  # noqa: E402
from branched_mtl.models import describe_model  # noqa: E402
from branched_mtl.tree import (count_tree_params, format_tree,  # noqa: E402
                               parse_budget, write_tree_config)
from branched_mtl.tree.budget import check_nonzero_budget  # noqa: E402
from branched_mtl.tree.draw import draw_tree  # noqa: E402
from branched_mtl.tree.flops import dataset_input_shape  # noqa: E402
from branched_mtl.utils import (UserError, dump_json_atomic,  # noqa: E402
                                short_repr)
from branched_mtl.utils.config import check_number_list  # noqa: E402
from branched_mtl.utils.device import device_name  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402
from branched_mtl.utils.paths import check_work_dir  # noqa: E402
from projects.learning_to_branch.ltb import (ARCH_KEY,  # noqa: E402
                                             derive_tree, encoder_sizes)

PROJECT_MODULE = 'projects.learning_to_branch.ltb'
# Search settings (config `ltb = dict(...)`); iters None: the config's own
# schedule length.
DEFAULTS: Dict[str, Any] = dict(
    num_nodes=None,          # K per block; None: one per task
    iters=None,              # search iterations
    warmup_iters=None,       # before the logits learn; None: iters // 5
    tau=(5.0, 0.5),          # Gumbel-softmax temperature, start and end
    hard=False,              # straight-through one-hot samples
    arch_optimizer=dict(type='Adam', lr=0.01, betas=(0.5, 0.999)),
    size_weight=None,        # None: 1.0 with a budget, else 0
    # the comparison's size knob: one search per weight, the tree chosen
    # by size alone (None: one search at size_weight)
    size_weights=None,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Learning to Branch: search the tree of a branched '
        'multi-task network with a Gumbel-softmax supergraph')
    parser.add_argument('config', help='a branched_mtl multi-task config')
    parser.add_argument('--work-dir', required=True,
                        help='writes DIR/branched.py, DIR/search.json')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--budget', help='parameter budget of the whole '
                      'model: 2.1M, 300K, or 60%% of the single-task models')
    size.add_argument('--flops-budget', help='FLOPs budget per image '
                      '(mmengine analysis): 15M, or 60%% of the single-task '
                      'models')
    parser.add_argument('--size-weight', type=float,
                        help='weight of the size penalty (expected size of '
                        'the tree; a hinge above the budget when one is '
                        'given)')
    parser.add_argument('--num-nodes', type=int, help='K, nodes per block')
    parser.add_argument('--iters', type=int, help='search iterations')
    parser.add_argument('--warmup', type=int,
                        help='iterations before the logits learn')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config')
    return parser.parse_args(argv)


def _settings(cfg: Config, args: argparse.Namespace) -> Dict[str, Any]:
    s = dict(DEFAULTS)
    given = dict(cfg.get('ltb') or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UserError(f'ltb settings {unknown} unknown; known are '
                        f'{sorted(DEFAULTS)}')
    s.update(given)
    for key, value in (('num_nodes', args.num_nodes), ('iters', args.iters),
                       ('warmup_iters', args.warmup),
                       ('size_weight', args.size_weight)):
        if value is not None:
            s[key] = value
    if s['iters'] is None:
        s['iters'] = int(cfg.train_cfg.max_iters)
    if s['warmup_iters'] is None:
        s['warmup_iters'] = s['iters'] // 5
    for key in ('iters', 'warmup_iters'):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or \
                s[key] < (1 if key == 'iters' else 0):
            raise UserError(f'{key} must be a whole number >= '
                            f'{1 if key == "iters" else 0}, got '
                            f'{short_repr(s[key])}')
    if s['warmup_iters'] >= s['iters']:
        raise UserError(f'warm-up ({s["warmup_iters"]}) must be shorter '
                        f'than the search ({s["iters"]} iterations), or the '
                        'logits never learn')
    tau = s['tau']
    if not (isinstance(tau, (list, tuple)) and len(tau) == 2 and all(
            isinstance(t, (int, float)) and not isinstance(t, bool)
            and math.isfinite(t) and t > 0 for t in tau)):
        raise UserError(f'ltb.tau must be (start, end), two finite numbers '
                        f'> 0, got {short_repr(tau)}')
    nodes = s['num_nodes']
    if nodes is not None and (isinstance(nodes, bool) or not isinstance(
            nodes, int) or nodes < 1):
        raise UserError(f'num_nodes must be a whole number >= 1, got '
                        f'{short_repr(nodes)}')
    if not isinstance(s['hard'], bool):
        raise UserError(f'ltb.hard must be True or False, got '
                        f'{short_repr(s["hard"])}')
    if not isinstance(s['arch_optimizer'], dict):
        raise UserError(f'ltb.arch_optimizer must be an optimizer dict, got '
                        f'{short_repr(s["arch_optimizer"])}')
    w = s['size_weight']
    if w is not None and not (isinstance(w, (int, float)) and w >= 0
                              and math.isfinite(w)):
        raise UserError(f'size_weight must be a finite number >= 0, got '
                        f'{short_repr(w)}')
    if s['size_weights'] is not None:
        check_number_list(s['size_weights'], 'ltb.size_weights')
    return s


def _check_config(config: str, cfg: Config) -> List[str]:
    """branched_mtl's own checks of a multi-task config (tasks labelled by
    the data, evaluator tasks, a probe split apart from the test split),
    run on the config as overridden here."""
    tasks = config_tasks(cfg)
    enc = cfg.model.encoder
    if enc.get('type') not in ('BranchedEncoder',
                               'branched_mtl.BranchedEncoder'):
        raise UserError(f'{config}: model.encoder is {enc.get("type")}; the '
                        'search needs a BranchedEncoder config (its stock '
                        'backbone is what the supergraph branches)')
    if enc.get('frozen_blocks', 0):
        raise UserError(f'{config}: model.encoder.frozen_blocks='
                        f'{enc.frozen_blocks}: frozen blocks cannot be '
                        'branched; set it to 0 for the search')
    try:
        # tools/branch.py's own settings do not concern the search: no
        # affinity probe
        check_multi_task_config(cfg, config, probe_samples=None)
    except ValueError as e:
        raise UserError(str(e)) from None
    # the blocks the supergraph branches (a TypeError names a backbone
    # without a block splitter)
    describe_model(cfg.model.to_dict())
    return tasks


def search_config(cfg: Config, s: Dict[str, Any], sizes: Dict[str, Any],
                  budget: Optional[float], unit: str, work_dir: str,
                  seed: int) -> Config:
    """The config of the search run: the supergraph, the search loop, no
    validation or test."""
    scfg = copy.deepcopy(cfg)
    enc = dict(scfg.model.encoder)
    scfg.model.encoder = dict(
        type='LTBSupergraph', backbone=enc['backbone'], tasks=enc['tasks'],
        num_nodes=s['num_nodes'], granularity=enc.get('granularity', 'stage'),
        tau=float(s['tau'][0]), hard=bool(s['hard']))
    imports = list((scfg.get('custom_imports') or {}).get('imports', []))
    for module in ('branched_mtl', PROJECT_MODULE):
        if module not in imports:
            imports.append(module)
    scfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    set_train_iters(scfg, s['iters'])
    # the logits learn only in the search loop's own step, on held-out data
    paramwise = dict(scfg.optim_wrapper.get('paramwise_cfg') or {})
    keys = dict(paramwise.get('custom_keys') or {})
    keys[ARCH_KEY] = dict(lr_mult=0.0, decay_mult=0.0)
    paramwise['custom_keys'] = keys
    scfg.optim_wrapper.paramwise_cfg = paramwise
    arch_loader = copy.deepcopy(scfg.val_dataloader)
    arch_loader.batch_size = scfg.train_dataloader.batch_size
    arch_loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    per_block = sizes['params'] if unit == 'params' else sizes['flops']
    weight = s['size_weight']
    if weight is None:
        weight = 1.0 if budget is not None else 0.0
    scfg.train_cfg = dict(
        type='LTBSearchLoop', max_iters=s['iters'],
        val_interval=s['iters'] + 1, val_begin=s['iters'] + 1,
        arch_dataloader=arch_loader, warmup_iters=s['warmup_iters'],
        tau=tuple(s['tau']), arch_optimizer=s['arch_optimizer'],
        size_unit=per_block, size_scale=float(sum(per_block)),
        size_weight=float(weight),
        # the penalty sees the encoder's blocks only: the heads are fixed
        size_budget=None if budget is None else float(
            budget - (sizes['head_params'] if unit == 'params'
                      else sizes['head_flops'])))
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        scfg[key] = None
    scfg.custom_hooks = [
        h for h in (scfg.get('custom_hooks') or [])
        if 'Affinity' not in str(h.get('type', ''))
    ]
    scfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=s['iters'],
        max_keep_ckpts=1, save_last=True)
    scfg.randomness = dict(scfg.get('randomness') or {}, seed=seed)
    scfg.work_dir = osp.join(work_dir, 'search')
    scfg.launcher = 'none'
    scfg.resume = False
    scfg.load_from = None
    scfg.pop('ltb', None)
    scfg.pop('branch', None)
    return scfg


def _budget(text: str, separate: float, what: str) -> float:
    try:
        value = parse_budget(text, separate)
    except (ValueError, OverflowError) as e:
        raise UserError(f'--{what}: {e}') from None
    return float(check_nonzero_budget(
        value, text, f'--{what}',
        'flops' if what == 'flops-budget' else 'params'))


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Check the inputs, search, derive, write. Returns the record."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    s = _settings(cfg, args)
    try:
        tasks = _check_config(args.config, cfg)
    except TypeError as e:  # split_backbone: a backbone it cannot split
        raise UserError(str(e)) from None
    if s['num_nodes'] is None:
        s['num_nodes'] = len(tasks)
    check_work_dir(args.work_dir, '--work-dir', create=False)
    shape = dataset_input_shape(cfg.val_dataloader.dataset)
    sizes = encoder_sizes(cfg.model.to_dict(), shape)
    unit, budget = 'params', None
    if args.budget is not None:
        budget = _budget(args.budget, sizes['separate_params'], 'budget')
    elif args.flops_budget is not None:
        unit = 'flops'
        budget = _budget(args.flops_budget, sizes['separate_flops'],
                         'flops-budget')
    smallest = sizes[f'shared_{unit}']
    if budget is not None and budget < smallest:
        raise UserError(
            f'{"--budget" if unit == "params" else "--flops-budget"} '
            f'{budget:,.0f} {unit} is below the all-shared network '
            f'({smallest:,.0f} {unit}), the smallest tree: no tree fits')

    scfg = search_config(cfg, s, sizes, budget, unit, args.work_dir,
                         args.seed)
    os.makedirs(args.work_dir, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    runner = train(scfg)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model = runner.model.module if hasattr(runner.model, 'module') \
        else runner.model
    parent = model.encoder.arch_logits_parent.detach().cpu().numpy()
    head = model.encoder.arch_logits_head.detach().cpu().numpy()

    per_block = sizes['params'] if unit == 'params' else sizes['flops']
    fixed = sizes['head_params'] if unit == 'params' else sizes['head_flops']
    tree = derive_tree(parent, head, tasks, per_block, fixed, budget)
    branches = tree['branches']
    params = count_tree_params(branches, sizes['params'],
                               sizes['head_params'])
    flops = sizes['head_flops'] + sum(
        len(p) * f for p, f in zip(branches, sizes['flops']))
    names = sizes['block_names']
    out = osp.join(args.work_dir, 'branched.py')
    budget_text = 'none' if budget is None else f'{budget:.0f} {unit}'
    header = [
        'Generated by projects/learning_to_branch/tools/search.py: the tree '
        'Learning to Branch chose (argmax of the logits).',
        f'K={s["num_nodes"]} iters={s["iters"]} warmup={s["warmup_iters"]} '
        f'seed={args.seed} budget={budget_text} params={params} '
        f'flops={flops:.0f}',
    ]
    write_tree_config(out, args.config, branches, tasks, header, names)
    png = draw_tree(branches, osp.join(args.work_dir, 'branched.png'), tasks,
                    names, title=f'Learning to Branch, {params / 1e6:.3g}M '
                    'params')
    parent_p = torch.softmax(torch.as_tensor(parent), -1).numpy()
    head_p = torch.softmax(torch.as_tensor(head), -1).numpy()
    record = dict(
        config=osp.abspath(args.config), tasks=tasks, block_names=names,
        seed=args.seed, settings={k: v for k, v in s.items()},
        budget=budget, budget_unit=unit if budget is not None else None,
        branches=branches, paths=tree['paths'], params=params, flops=flops,
        argmax_size=tree['argmax_size'], merges=tree['merges'],
        log_prob=tree['log_prob'],
        shared_params=sizes['shared_params'],
        separate_params=sizes['separate_params'],
        shared_flops=sizes['shared_flops'],
        separate_flops=sizes['separate_flops'],
        parent_logits=parent.tolist(), head_logits=head.tolist(),
        parent_probs=parent_p.tolist(), head_probs=head_p.tolist(),
        search_seconds=dict(wall=wall, cpu=cpu, device=device_name()),
        config_out=out, png=png)
    dump_json_atomic(record, osp.join(args.work_dir, 'search.json'))
    print('Tree (one line per block, shallow to deep):')
    print(format_tree(branches, names))
    print(f'parameters: {params:,} (all shared {sizes["shared_params"]:,}, '
          f'fully separate {sizes["separate_params"]:,}); FLOPs: '
          f'{flops / 1e6:.3f}M (all shared '
          f'{sizes["shared_flops"] / 1e6:.3f}M)'
          + (f'; budget {budget_text}' if budget is not None else ''))
    if tree['merges']:
        print(f'the argmax tree ({tree["argmax_size"]:,.0f} {unit}) was over '
              f'the budget: {tree["merges"]} merge(s) of the least likely '
              'branches brought it within')
    print(f'search cost: {wall:.1f} s wall, {cpu:.1f} s CPU time on '
          f'{device_name()}')
    print(f'config: {out}')
    return record


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f'search: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    quiet_known_warnings()
    sys.exit(main())
