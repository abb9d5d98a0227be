"""The cost of the method as the work grows, from measured parts: jobs and
GPU-hours of the recombination sweep in its three modes, and of the
single-task models, for the paper's data sets.

    python tools/analysis/scaling_estimate.py [--retrain-fraction 0.25]
        [--anchor-img-s 64] [--per-job-overhead-s 22]
        [--in-process-overhead-s S] [--tasks nyu=4] [--out R.json]

Inputs, all measured or read from the configs (nothing here is a guess
except where an option says so):

* FLOPs per image of every encoder block and of the heads: mmengine's
  FlopAnalyzer through :func:`branched_mtl.models.describe.tree_flops_info`, on
  the configs' all-shared models at their input size (one multiply-add =
  one FLOP, as mmengine counts).
* GPU speed: one measured rate, ``--anchor-img-s`` training images per
  second of the Cityscapes all-shared model (ResNet-50-d8 + 3 PSP heads,
  256x512, batch 8, fp32) on one H100 (64 img/s, ../shared/STACK.md). Every
  other network's time is scaled from it by training FLOPs (forward x 3 for
  the trained part, forward x 1 for a frozen bottom). STACK.md's second
  figure (three separate encoders, 43 img/s) checks that scaling; the
  script prints the check.
* Per-job overhead of ``--exec per-job`` (process start-up and shutdown):
  ``--per-job-overhead-s``, 22 s measured on MultiDigits
  (docs/benchmarks.md "Recombination sweep", CPU, marked stale there).
  ``--exec in-process`` pays it once per worker, not per job:
  ``--in-process-overhead-s`` is its per-job remainder (default 0: compute
  only, a lower bound until the in-process figures of docs/benchmarks.md
  are measured).
* The schedule: each config's ``train_cfg.max_iters`` and batch size; a
  recombined job trains ``--retrain-fraction`` of it (the paper does not
  say how long; the sweep's ``--iters`` sets it).

Job counts: per-pair N*N*L (target, source, split), shared-bottom and
in-process N*L (source, split; all N targets in one job).
"""
import argparse
from typing import Any, Dict, List

from mmengine.config import Config
from mmengine.registry import init_default_scope

import branched_mtl  # noqa: F401
from branched_mtl.models.describe import tree_flops_info
from branched_mtl.utils.console import quiet_logger
from branched_mtl.utils.io import dump_json_atomic

# (name, config, input C,H,W as the config's pipeline gives it)
DATA_SETS = [
    ('Cityscapes',
     'configs/cityscapes/resnet50-d8-psp_all-shared_cityscapes-256x512.py',
     (3, 256, 512)),
    ('NYUv2', 'configs/nyu/resnet50-d8-psp_all-shared_nyu-480x640.py',
     (3, 480, 640)),
    ('CelebA', 'configs/celeba/vgg16_all-shared_celeba.py', (3, 224, 224)),
]
ANCHOR = 'Cityscapes'
TRAIN_FACTOR = 3  # forward + backward ~ 3 forward passes


def measure_flops(config: str, shape) -> Dict[str, Any]:
    """Config facts and mmengine FLOPs of its all-shared model."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    with quiet_logger():
        info = tree_flops_info(cfg.model, shape)
    return dict(config=config, tasks=list(cfg.model.encoder.tasks),
                max_iters=int(cfg.train_cfg.max_iters),
                batch=int(cfg.train_dataloader.batch_size), **info)


def estimate(facts: Dict[str, Any], num_tasks: int, sec_per_flop: float,
             retrain_fraction: float, per_job_overhead: float,
             in_process_overhead: float) -> Dict[str, Any]:
    """Jobs and GPU-hours of one data set's sweep, from its FLOPs."""
    blocks: List[int] = facts['block_flops']
    head = facts['head_flops'] / len(facts['tasks'])  # one task's head
    n, num_splits = num_tasks, len(blocks)
    images = facts['max_iters'] * facts['batch']
    retrain_images = images * retrain_fraction
    single = TRAIN_FACTOR * (sum(blocks) + head)  # FLOPs per image
    per_pair_flops = shared_flops = 0.0
    for split in range(1, num_splits + 1):
        bottom, top = sum(blocks[:split]), sum(blocks[split:])
        # per pair: frozen bottom forward, one trained top and head
        per_pair_flops += n * n * (bottom + TRAIN_FACTOR * (top + head))
        # shared bottom: the bottom once, N trained tops and heads
        shared_flops += n * (bottom + n * TRAIN_FACTOR * (top + head))
    jobs_pp, jobs_sb = n * n * num_splits, n * num_splits
    hours = 1 / 3600

    def gpu_h(flops_per_image: float, jobs: int, overhead: float) -> float:
        return (flops_per_image * retrain_images * sec_per_flop +
                jobs * overhead) * hours

    return dict(
        tasks=n, splits=num_splits, block_gflops=[b / 1e9 for b in blocks],
        head_gflops=head / 1e9, schedule_images=images,
        single_task_gpu_h=n * single * images * sec_per_flop * hours,
        jobs=dict(per_pair=jobs_pp, shared_bottom=jobs_sb,
                  in_process=jobs_sb),
        gpu_h=dict(
            per_pair=gpu_h(per_pair_flops, jobs_pp, per_job_overhead),
            shared_bottom=gpu_h(shared_flops, jobs_sb, per_job_overhead),
            in_process=gpu_h(shared_flops, jobs_sb, in_process_overhead)),
        overhead_gpu_h=dict(per_pair=jobs_pp * per_job_overhead * hours,
                            shared_bottom=jobs_sb * per_job_overhead * hours,
                            in_process=jobs_sb * in_process_overhead * hours))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--retrain-fraction', type=float, default=0.25,
                        help='share of the full schedule each recombined '
                        'job trains')
    parser.add_argument('--anchor-img-s', type=float, default=64.0,
                        help='measured training images/s of the Cityscapes '
                        'all-shared model on one GPU')
    parser.add_argument('--separate-img-s', type=float, default=43.0,
                        help='measured images/s of its three separate '
                        'encoders (a check of the FLOPs scaling)')
    parser.add_argument('--per-job-overhead-s', type=float, default=22.0)
    parser.add_argument('--in-process-overhead-s', type=float, default=0.0)
    parser.add_argument('--tasks', nargs='*', default=[],
                        metavar='NAME=N', help='another task count for a '
                        'data set (heads: the mean of its config\'s)')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    overrides: Dict[str, int] = {}
    for item in args.tasks:
        name, _, num = item.partition('=')
        match = [d for d, _, _ in DATA_SETS if d.lower() == name.lower()]
        if not match or not num.isdigit() or int(num) < 2:
            parser.error(f'--tasks {item!r}: expected NAME=N with NAME one '
                         f'of {[d for d, _, _ in DATA_SETS]} and N >= 2')
        overrides[match[0]] = int(num)

    facts = {name: measure_flops(cfg, shape)
             for name, cfg, shape in DATA_SETS}
    a = facts[ANCHOR]
    n_a = len(a['tasks'])
    head_a = a['head_flops']
    shared_fwd = sum(a['block_flops']) + head_a
    sec_per_flop = 1 / (args.anchor_img_s * TRAIN_FACTOR * shared_fwd)
    separate_fwd = n_a * sum(a['block_flops']) + head_a
    predicted = args.anchor_img_s * shared_fwd / separate_fwd
    print(f'anchor: {ANCHOR} all-shared, {shared_fwd / 1e9:.1f} GFLOPs '
          f'forward per image, {args.anchor_img_s:g} img/s -> '
          f'{1 / sec_per_flop / 1e12:.1f} TFLOP/s achieved in training')
    print(f'check: {n_a} separate encoders predicted {predicted:.1f} img/s '
          f'from FLOPs, measured {args.separate_img_s:g}')
    print(f'recombined jobs train {args.retrain_fraction:g} of the config '
          f'schedule; per-job overhead {args.per_job_overhead_s:g} s '
          f'(per-job), {args.in_process_overhead_s:g} s (in-process)')
    print('| data set | N | L | GFLOPs/img (encoder + 1 head) | single-task '
          'models GPU-h | per-pair jobs | per-pair GPU-h | shared-bottom '
          'jobs | shared-bottom GPU-h | in-process GPU-h |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    results = {}
    for name, _, _ in DATA_SETS:
        f = facts[name]
        n = overrides.get(name, len(f['tasks']))
        r = estimate(f, n, sec_per_flop, args.retrain_fraction,
                     args.per_job_overhead_s, args.in_process_overhead_s)
        results[name] = dict(r, config=f['config'],
                             input_shape=f['input_shape'],
                             config_tasks=len(f['tasks']))
        enc = sum(r['block_gflops']) + r['head_gflops']
        label = name if n == len(f['tasks']) else f'{name} (N set to {n})'
        print(f'| {label} | {n} | {r["splits"]} | {enc:.2f} | '
              f'{r["single_task_gpu_h"]:.1f} | {r["jobs"]["per_pair"]} | '
              f'{r["gpu_h"]["per_pair"]:.1f} | {r["jobs"]["shared_bottom"]} '
              f'| {r["gpu_h"]["shared_bottom"]:.1f} | '
              f'{r["gpu_h"]["in_process"]:.1f} |')
    if args.out:
        dump_json_atomic(dict(args=vars(args),
                              achieved_tflops=1 / sec_per_flop / 1e12,
                              separate_check=dict(
                                  predicted_img_s=predicted,
                                  measured_img_s=args.separate_img_s),
                              results=results), args.out)


if __name__ == '__main__':
    main()
