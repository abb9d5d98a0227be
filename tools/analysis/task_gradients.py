"""Each task's gradient on the shared encoder of the all-shared model, and
the loss weights that balance them (the rule of docs/comparison.md).

Example::

    python tools/analysis/task_gradients.py \\
        configs/multidigits/resnet18-thin_all-shared_multidigits.py \\
        --out work_dirs/task_gradients.json --batches 4

reads probe batches (the config's ``val_dataloader``: the probe split, never
the test split), measures every task's gradient with all loss weights 1 at
initialisation (or at each of ``--checkpoints``), and writes the norms,
shares, per-block cosines and ``loss_weights`` (equal gradient norms, mean
1) as JSON; ``--cfg-options`` as in tools/train.py. With several
checkpoints (e.g. of the all-shared model trained with unit weights, over
its schedule) the weights balance the norms averaged over them, so that
neither the first steps nor the end alone decide.
"""
import argparse
import itertools
import sys
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

import branched_mtl  # noqa: F401  (registers the types)
from branched_mtl.evaluation.task_gradients import (balanced_loss_weights,
                                                    task_gradients)
from branched_mtl.registry import MODELS
from branched_mtl.utils import UserError, dump_json_atomic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an all-shared multi-task config')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--checkpoints', nargs='+', default=[None],
                        help='weights to measure at, averaged (default: the '
                        'initialisation)')
    parser.add_argument('--batches', type=int, default=4,
                        help='probe batches to average over')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--png', help='also draw the shares and per-block '
                        'cosines')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def measure(cfg: Config, batches: int, seed: int,
            checkpoint: Optional[str] = None) -> dict:
    """Build the config's model and measure its task gradients.

    Args:
        cfg: A multi-task config with a ``val_dataloader`` (the probe).
        batches: How many probe batches to average over (>= 1).
        seed: Seed of the initialisation.
        checkpoint: Optional weights to load instead.

    Returns:
        :func:`task_gradients`'s dict plus ``loss_weights``.
    """
    if batches < 1:
        raise UserError(f'--batches must be >= 1, got {batches}')
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    model.train()
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=seed)
    result = task_gradients(model, itertools.islice(loader, batches))
    result['loss_weights'] = balanced_loss_weights(result['norm'])
    return result


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        points = [measure(cfg, args.batches, args.seed, ckpt)
                  for ckpt in args.checkpoints]
    except (OSError, ValueError, UserError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    result = dict(points[0])
    if len(points) > 1:
        norm = {t: sum(p['norm'][t] for p in points) / len(points)
                for t in result['tasks']}
        total = sum(norm.values())
        result.update(norm=norm, share={t: v / total for t, v in norm.items()},
                      loss_weights=balanced_loss_weights(norm),
                      per_checkpoint=[dict(checkpoint=c, **p) for c, p in zip(
                          args.checkpoints, points)])
    doc = dict(config=args.config, seed=args.seed,
               checkpoints=args.checkpoints, **result)
    dump_json_atomic(doc, args.out)
    if args.png:
        from branched_mtl.visualization.task_gradients import \
            plot_task_gradients
        plot_task_gradients(doc, args.png)
    for t in result['tasks']:
        print(f'{t:>16}: share {result["share"][t]:.3f}  weight '
              f'{result["loss_weights"][t]:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
