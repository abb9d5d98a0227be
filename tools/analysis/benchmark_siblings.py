"""Sibling branches: the copies of one block run one after another
(sequential) against one batched call (vmap over stacked weights) and, for a
conv-only block, one grouped convolution.

    python tools/analysis/benchmark_siblings.py [--device cuda]
        [--copies 2 3 5] [--repeats 10] [--preset cpu|gpu] [--out R.json]

Every figure is the median over ``--repeats`` interleaved rounds (CPU:
process CPU time; GPU: wall time) of one training step (train mode, forward + backward) of the G copies on their
input; all variants of one case are timed in turn inside each round, so
that load from other processes hits them alike. The last rows time a whole
five-task ``BranchedEncoder`` with ``sibling_batching='sequential'`` and
``'vmap'``. The device defaults to CUDA when there is one; ``--preset``
picks CPU-tractable or GPU-sized inputs (default: by device).
"""
import argparse
import copy
import platform
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn

import branched_mtl  # noqa: F401
from branched_mtl.models import BranchedEncoder, split_backbone
from branched_mtl.models.encoders.sibling_batching import batched_siblings
from branched_mtl.registry import build_stock
from branched_mtl.utils.io import dump_json_atomic

BACKBONES = {
    'resnet18-thin': dict(type='mmpretrain.ResNet', depth=18,
                          base_channels=16, stem_channels=16,
                          out_indices=(3, )),
    'resnet50': dict(type='mmpretrain.ResNet', depth=50, out_indices=(3, )),
    'resnet50-d8': dict(type='mmseg.ResNetV1c', depth=50, out_indices=(3, ),
                        strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                        contract_dilation=True),
    'vgg16-thin32': dict(type='ThinVGG', width=32, depth=16, num_classes=-1,
                         norm_cfg=dict(type='BN'), out_indices=(4, )),
}
# (backbone, granularity, block name, batch, H, W)
PRESETS: Dict[str, List[Tuple[str, str, str, int, int, int]]] = {
    'cpu': [
        ('resnet18-thin', 'stage', 'layer2', 32, 32, 64),
        ('resnet18-thin', 'stage', 'layer4', 32, 32, 64),
        ('resnet50', 'stage', 'layer3', 2, 64, 64),
        ('vgg16-thin32', 'layer', 'stage2.conv1', 8, 224, 224),
    ],
    'gpu': [
        ('resnet18-thin', 'stage', 'layer2', 256, 32, 64),
        ('resnet50-d8', 'stage', 'layer3', 8, 256, 512),
        ('resnet50-d8', 'stage', 'layer4', 8, 256, 512),
        ('vgg16-thin32', 'layer', 'stage2.conv1', 64, 224, 224),
    ],
}
TASKS = ['t0', 't1', 't2', 't3', 't4']
# the tree of benchmark_encoder.py: shared stem and layer1, two groups at
# layer2 and layer3, four at layer4
BRANCHED = [[TASKS], [TASKS], [['t0', 't1', 't2'], ['t3', 't4']],
            [['t0', 't1', 't2'], ['t3', 't4']],
            [['t0', 't1'], ['t2'], ['t3'], ['t4']]]
ENCODER_CASE = {'cpu': ('resnet18-thin', 32, 32, 64),
                'gpu': ('resnet50-d8', 8, 256, 512)}


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(fns: Dict[str, Callable[[], torch.Tensor]], device: str,
               repeats: int, warmup: int = 3) -> Dict[str, float]:
    """Median seconds of one forward + backward of each function, timed in
    interleaved rounds.

    On a GPU: wall time. On the CPU: process CPU time, which other
    processes on a shared machine disturb far less than wall time (with
    one thread the two agree on a quiet machine).
    """
    clock = (time.perf_counter if device.startswith('cuda') else
             time.process_time)
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            _sync(device)
            start = clock()
            fn().backward()
            _sync(device)
            if i >= warmup:
                times[name].append(clock() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class GroupedConvLayer(nn.Module):
    """G copies of a conv + BN + ReLU layer as one grouped convolution over
    the channel-concatenated inputs (per-channel BN is the same op on G x C
    channels). Weights are held concatenated: the best case for this route.
    """

    def __init__(self, copies: List[nn.Module]) -> None:
        super().__init__()
        convs = [m for c in copies for m in c.modules()
                 if isinstance(m, nn.Conv2d)]
        norms = [m for c in copies for m in c.modules()
                 if isinstance(m, nn.BatchNorm2d)]
        pools = [m for m in copies[0].modules()
                 if isinstance(m, nn.MaxPool2d)]
        if len(convs) != len(copies) or len(norms) != len(copies):
            raise ValueError('GroupedConvLayer: one conv and one BN per copy '
                             'expected')
        c0 = convs[0]
        self.groups = len(copies)
        self.conv = nn.Conv2d(c0.in_channels * self.groups,
                              c0.out_channels * self.groups, c0.kernel_size,
                              c0.stride, c0.padding, c0.dilation,
                              groups=self.groups, bias=c0.bias is not None)
        self.bn = nn.BatchNorm2d(c0.out_channels * self.groups)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([c.weight for c in convs]))
            if c0.bias is not None:
                self.conv.bias.copy_(torch.cat([c.bias for c in convs]))
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                getattr(self.bn, name).copy_(
                    torch.cat([getattr(n, name) for n in norms]))
        self.pool = pools[0] if pools else nn.Identity()

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        x = torch.cat(xs, dim=1)
        y = self.pool(torch.relu(self.bn(self.conv(x))))
        return list(y.chunk(self.groups, dim=1))


def block_case(backbone: str, granularity: str, block: str, batch: int,
               h: int, w: int, copies: int, device: str,
               repeats: int) -> Dict[str, float]:
    """Step times of ``copies`` sibling copies of one block, each mode."""
    stock = build_stock(BACKBONES[backbone])
    blocks = split_backbone(stock, granularity)
    names = [b.name for b in blocks]
    if block not in names:
        raise ValueError(f'{backbone}: no block {block!r} (has {names})')
    idx = names.index(block)
    with torch.no_grad():
        x = torch.randn(2, 3, h, w)
        for b in blocks[:idx]:
            b.module.eval()
            x = b.module(x)
    shape = (batch, ) + tuple(x.shape[1:])
    gen = torch.Generator().manual_seed(0)
    module = blocks[idx].module.train()
    nodes = [module] + [copy.deepcopy(module) for _ in range(copies - 1)]
    for n in nodes:
        with torch.no_grad():
            for p in n.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 1e-2)
        n.to(device).train()
    # one parent per copy, as at a block below which the tree split
    inputs = [torch.randn(shape, generator=gen).to(device).requires_grad_()
              for _ in range(copies)]

    fns = {
        'sequential': lambda: sum(
            n(i).mean() for n, i in zip(nodes, inputs)),
        'vmap': lambda: sum(o.mean()
                            for o in batched_siblings(nodes, inputs)),
    }
    conv_only = granularity == 'layer'
    if conv_only:
        grouped = GroupedConvLayer(nodes).to(device).train()
        fns['grouped conv'] = lambda: sum(o.mean() for o in grouped(inputs))
    return time_steps(fns, device, repeats)


def encoder_case(preset: str, device: str,
                 repeats: int) -> Tuple[str, Dict[str, float]]:
    """Step time of a whole branched encoder, sequential against vmap."""
    backbone, batch, h, w = ENCODER_CASE[preset]
    x = torch.randn(batch, 3, h, w, device=device)
    fns = {}
    for mode in ('sequential', 'vmap'):
        enc = BranchedEncoder(BACKBONES[backbone], TASKS, BRANCHED,
                              sibling_batching=mode).to(device).train()
        fns[mode] = (lambda e=enc: sum(
            f.float().mean() for feats in e(x).values() for f in feats))
    return f'{backbone} {batch}x3x{h}x{w}', time_steps(fns, device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--preset', choices=sorted(PRESETS), default=None)
    parser.add_argument('--copies', type=int, nargs='+', default=[2, 3, 5])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--out', default=None, help='write the rows as JSON')
    args = parser.parse_args()
    preset = args.preset or ('gpu' if args.device.startswith('cuda')
                             else 'cpu')
    device_name = (torch.cuda.get_device_name(args.device)
                   if args.device.startswith('cuda') else
                   f'{platform.processor() or platform.machine()} CPU, '
                   f'{torch.get_num_threads()} threads')
    clock = 'wall' if args.device.startswith('cuda') else 'process CPU'
    print(f'device {args.device} ({device_name}), torch {torch.__version__}'
          f', preset {preset}, median of {args.repeats} rounds, {clock} '
          'time')
    print('| block, input per copy | copies | sequential ms | vmap ms | '
          'grouped conv ms | vmap / sequential | grouped / sequential |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    rows = []
    for backbone, gran, block, batch, h, w in PRESETS[preset]:
        for g in args.copies:
            t = block_case(backbone, gran, block, batch, h, w, g,
                           args.device, args.repeats)
            seq = t['sequential']
            grouped = t.get('grouped conv')
            print(f'| {backbone} {block}, image {batch}x3x{h}x{w} | {g} | '
                  f'{seq * 1e3:.1f} | {t["vmap"] * 1e3:.1f} | '
                  + (f'{grouped * 1e3:.1f}' if grouped else '-') +
                  f' | {t["vmap"] / seq:.2f} | ' +
                  (f'{grouped / seq:.2f}' if grouped else '-') + ' |',
                  flush=True)
            rows.append(dict(backbone=backbone, block=block, batch=batch,
                             size=[h, w], copies=g, seconds=t))
    name, t = encoder_case(preset, args.device, args.repeats)
    print(f'| whole encoder, 5 tasks, tree of benchmark_encoder.py, {name} '
          f'| 1-4 per block | {t["sequential"] * 1e3:.1f} | '
          f'{t["vmap"] * 1e3:.1f} | - | '
          f'{t["vmap"] / t["sequential"]:.2f} | - |')
    rows.append(dict(encoder=name, seconds=t))
    if args.out:
        dump_json_atomic(dict(device=args.device, device_name=device_name,
                              torch=torch.__version__, preset=preset,
                              repeats=args.repeats, rows=rows), args.out)


if __name__ == '__main__':
    main()
