"""Wrapper overhead: BranchedMultiTaskModel (one task, all-shared) against
stock mmseg ``EncoderDecoder`` with the same backbone, head, input and batch.

    python tools/analysis/benchmark_overhead.py [--model resnet50-d8]
        [--size 64 128] [--batch 4] [--rounds 20] [--device cpu]
        [--out FILE.json]

Both models are built from the same configs (mmseg ``ResNetV1c`` dilated to
output stride 8 + mmseg ``PSPHead``); ours gets the stock model's weights,
and the script checks that the two compute the same loss on the same batch
before timing. A timed step is the whole mmengine training step,
``model.train_step(data, optim_wrapper)``: each model's own data
preprocessor (mmseg's ``SegDataPreProcessor`` / our
``DenseDataPreprocessor``), forward, loss, ``parse_losses``, backward and
the SGD step through mmengine's ``OptimWrapper``. The two are timed in
interleaved rounds (ABBA order), so that load from other processes hits
both alike; the ratio is the median over rounds of
``stock step time / ours step time`` (= our throughput / stock
throughput), on the wall clock and on the process CPU clock (the steadier
one on a CPU shared with other jobs; run with OMP_NUM_THREADS=1 there).
"""
import argparse
import copy
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from branched_mtl.models.encoders.backbone_blocks import split_backbone
from branched_mtl.registry import build_stock
from branched_mtl.utils.console import ignore_known_warnings, quiet_logger
from branched_mtl.utils.io import dump_json_atomic

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# name -> (backbone overrides, PSP head in_channels, PSP channels)
MODELS_ = {
    # the paper's dense encoder (ResNet-50, output stride 8)
    'resnet50-d8': (dict(depth=50), 2048, 512),
    # the CPU configs' narrow ResNet-18 (a quarter of the width): per-step
    # compute is small, so Python overhead of a wrapper shows most
    'resnet18-narrow-d8': (dict(depth=18, base_channels=16,
                                stem_channels=16), 128, 32),
}


def backbone_cfg(name: str) -> dict:
    """mmseg ResNetV1c dilated to output stride 8, as in our PSP configs."""
    over, _, _ = MODELS_[name]
    return dict(type='mmseg.ResNetV1c', num_stages=4, out_indices=(3, ),
                dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                norm_cfg=dict(type='BN', requires_grad=True),
                norm_eval=False, style='pytorch', contract_dilation=True,
                **over)


def psp_head_cfg(name: str, num_classes: int = 19) -> dict:
    _, in_channels, channels = MODELS_[name]
    return dict(type='mmseg.PSPHead', in_channels=in_channels,
                channels=channels, pool_scales=(1, 2, 3, 6),
                num_classes=num_classes,
                norm_cfg=dict(type='BN', requires_grad=True),
                align_corners=False)


def stock_model_cfg(name: str, num_classes: int = 19) -> dict:
    """Stock mmseg EncoderDecoder: backbone + PSP head, no auxiliary head."""
    return dict(
        type='mmseg.EncoderDecoder',
        data_preprocessor=dict(type='mmseg.SegDataPreProcessor', mean=MEAN,
                               std=STD, size_divisor=8, pad_val=0,
                               seg_pad_val=255),
        backbone=backbone_cfg(name),
        decode_head=psp_head_cfg(name, num_classes),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def branched_model_cfg(name: str, tasks: Sequence[str] = ('semseg', ),
                       branches=None, num_classes: int = 19,
                       frozen_blocks: int = 0,
                       channels_last: bool = False) -> dict:
    """Our model: the same backbone as a BranchedEncoder tree, one PSP head
    per task (every task a semantic segmentation)."""
    return dict(
        type='branched_mtl.BranchedMultiTaskModel',
        channels_last=channels_last,
        data_preprocessor=dict(type='branched_mtl.DenseDataPreprocessor',
                               mean=MEAN, std=STD, pad_size_divisor=8),
        encoder=dict(type='branched_mtl.BranchedEncoder',
                     backbone=backbone_cfg(name), tasks=list(tasks),
                     branches=branches, frozen_blocks=frozen_blocks),
        head=dict(type='branched_mtl.MultiTaskHead',
                  task_heads={t: psp_head_cfg(name, num_classes)
                              for t in tasks}))


def copy_stock_weights(stock: torch.nn.Module, ours: torch.nn.Module) -> None:
    """Give every copy of every block, and every task head, the stock
    model's weights (so the two models compute the same function)."""
    blocks = split_backbone(stock.backbone)
    for b, block in enumerate(blocks):
        for node in ours.encoder.nodes[b]:
            node.load_state_dict(block.module.state_dict())
    for head in ours.head.task_heads.values():
        head.load_state_dict(stock.decode_head.state_dict())


def make_batch(batch: int, size: Tuple[int, int], num_classes: int = 19,
               tasks: Sequence[str] = ('semseg', ), seed: int = 0
               ) -> Tuple[dict, dict]:
    """One random batch as the data loader gives it, in both layouts.

    Returns:
        ``(stock_data, our_data)``: uint8 images with mmseg ``SegDataSample``
        targets / with one ``SegDataSample`` per task in a
        ``MultiTaskDataSample``; same images and labels.
    """
    from mmengine.structures import PixelData
    from mmpretrain.structures import MultiTaskDataSample
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    h, w = size
    inputs, stock_samples, our_samples = [], [], []
    for _ in range(batch):
        img = torch.randint(0, 256, (3, h, w), generator=g,
                            dtype=torch.uint8)
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    scale_factor=(1.0, 1.0), flip=False)
        inputs.append(img)
        seg = SegDataSample(metainfo=meta)
        seg.gt_sem_seg = PixelData(data=label)
        stock_samples.append(seg)
        sample = MultiTaskDataSample(metainfo=meta)
        for task in tasks:
            sub = SegDataSample(metainfo=meta)
            sub.gt_sem_seg = PixelData(data=label.clone())
            sample.set_field(sub, task)
        our_samples.append(sample)
    return (dict(inputs=inputs, data_samples=stock_samples),
            dict(inputs=list(inputs), data_samples=our_samples))


def sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def train_step_fn(model: torch.nn.Module, data: dict, optim_wrapper,
                  steps: int) -> Callable[[], Dict[str, torch.Tensor]]:
    """One full mmengine training step per call, ``steps`` calls at most.

    The preprocessors pad targets in place, so every step gets its own copy
    of the loader's batch, made here beforehand: copying is not part of a
    training step and would cost the nested multi-task samples more.
    """
    copies = [copy.deepcopy(data) for _ in range(steps)]

    def step():
        return model.train_step(copies.pop(), optim_wrapper)

    return step


def sgd_wrapper(model: torch.nn.Module, optim_type: str = 'OptimWrapper',
                **kwargs):
    """mmengine's OptimWrapper (or AmpOptimWrapper) with SGD + momentum."""
    from mmengine.registry import OPTIM_WRAPPERS
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return OPTIM_WRAPPERS.build(dict(type=optim_type, optimizer=optimizer,
                                     **kwargs))


def interleaved_wall_cpu(fns: Dict[str, Callable], device: str,
                         rounds: int, warmup: int = 2
                         ) -> Tuple[Dict[str, List[float]],
                                    Dict[str, List[float]]]:
    """Wall and process-CPU seconds of each step, round by round.

    On a CPU shared with other jobs the wall time of a step includes the
    time others held the cores; the process CPU time does not (with one
    thread it is the step's own compute), so it is the steadier measure
    there. On a GPU the wall time is the measure.
    """
    names = list(fns)
    wall: Dict[str, List[float]] = {k: [] for k in names}
    cpu: Dict[str, List[float]] = {k: [] for k in names}
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            sync(device)
            if r >= warmup:
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
    return wall, cpu


def build_pair(name: str, device: str, num_classes: int = 19):
    """The stock model and ours with its weights, both in training mode."""
    torch.manual_seed(0)
    stock = build_stock(stock_model_cfg(name, num_classes))
    with quiet_logger():
        stock.init_weights()
    ours = build_stock(branched_model_cfg(name, num_classes=num_classes))
    copy_stock_weights(stock, ours)
    return stock.to(device).train(), ours.to(device).train()


def check_same_loss(stock, ours, stock_data: dict, our_data: dict) -> float:
    """Both models' loss on one batch in training mode; raises if they
    differ. The same seed before each gives the PSP head's dropout the same
    mask."""
    with torch.no_grad():
        torch.manual_seed(1)
        a = stock(**stock.data_preprocessor(copy.deepcopy(stock_data), True),
                  mode='loss')['decode.loss_ce']
        torch.manual_seed(1)
        b = ours(**ours.data_preprocessor(copy.deepcopy(our_data), True),
                 mode='loss')['semseg.loss_ce']
    diff = abs(a.item() - b.item())
    if diff > 1e-5 * max(1.0, abs(a.item())):
        raise RuntimeError(f'stock loss {a.item():.6f} != ours '
                           f'{b.item():.6f}: the models differ')
    return diff


def main() -> None:
    # e.g. mmseg's note that avg_non_ignore is False: the same for both
    # models
    ignore_known_warnings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='resnet50-d8',
                        choices=sorted(MODELS_))
    parser.add_argument('--size', type=int, nargs=2, default=(64, 128))
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='JSON file for the results')
    args = parser.parse_args()
    load_start = list(os.getloadavg())
    stock, ours = build_pair(args.model, args.device)
    stock_data, our_data = make_batch(args.batch, tuple(args.size))
    loss_diff = check_same_loss(stock, ours, stock_data, our_data)
    steps = args.rounds + args.warmup
    fns = dict(
        stock=train_step_fn(stock, stock_data, sgd_wrapper(stock), steps),
        ours=train_step_fn(ours, our_data, sgd_wrapper(ours), steps))
    wall, cpu = interleaved_wall_cpu(fns, args.device, args.rounds,
                                     args.warmup)
    result = dict(
        model=args.model, size=list(args.size), batch=args.batch,
        device=args.device, rounds=args.rounds,
        torch=torch.__version__, torch_threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        cpus=os.cpu_count(), load_avg_start=load_start,
        load_avg_end=list(os.getloadavg()), loss_diff=loss_diff)
    print(f'{args.model}, batch {args.batch}x3x{args.size[0]}x'
          f'{args.size[1]}, {args.device}, {args.rounds} interleaved rounds, '
          f'{torch.get_num_threads()} threads; same loss (|diff| '
          f'{loss_diff:.1e}); load average {load_start[0]:.1f} -> '
          f'{result["load_avg_end"][0]:.1f}')
    print('| clock | stock step ms | ours step ms | stock img/s | '
          'ours img/s | ours / stock throughput (median of rounds) | '
          'range over rounds |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for clock, times in (('wall', wall), ('process CPU', cpu)):
        med = {k: statistics.median(v) for k, v in times.items()}
        ratios = [s / o for s, o in zip(times['stock'], times['ours'])]
        key = 'wall' if clock == 'wall' else 'cpu'
        result[key] = dict(
            stock_step_s=med['stock'], ours_step_s=med['ours'],
            stock_img_s=args.batch / med['stock'],
            ours_img_s=args.batch / med['ours'],
            ratio_median=statistics.median(ratios),
            ratio_min=min(ratios), ratio_max=max(ratios))
        r = result[key]
        print(f'| {clock} | {med["stock"] * 1e3:.1f} | '
              f'{med["ours"] * 1e3:.1f} | {r["stock_img_s"]:.2f} | '
              f'{r["ours_img_s"]:.2f} | {r["ratio_median"]:.3f} | '
              f'{r["ratio_min"]:.3f} .. {r["ratio_max"]:.3f} |')
    if args.out:
        dump_json_atomic(result, args.out)


if __name__ == '__main__':
    main()
