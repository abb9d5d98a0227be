"""Train-step time of a BranchedEncoder against all-shared, N separate
encoders and the ideal (the sum of its unique nodes' step times alone).

    python tools/analysis/benchmark_encoder.py [--backbone resnet50-d8]
        [--size 256 512] [--batch 8] [--device cuda] [--repeats 20]

Each figure is the median over ``--repeats`` forward+backward passes (after
warm-up) of the encoder alone (no heads, no optimizer), all measured in one
run so that the ratios are side by side.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch

import branched_mtl  # noqa: F401
from branched_mtl.models import BranchedEncoder
from branched_mtl.tree import all_shared, fully_separate

BACKBONES = {
    'resnet18-thin': dict(type='mmpretrain.ResNet', depth=18, base_channels=16,
                          stem_channels=16, out_indices=(3, )),
    'resnet50': dict(type='mmpretrain.ResNet', depth=50, out_indices=(3, )),
    'resnet50-d8': dict(type='mmseg.ResNetV1c', depth=50, out_indices=(3, ),
                        strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                        contract_dilation=True),
}
TASKS = ['t0', 't1', 't2', 't3', 't4']
# a tree in the spirit of the paper's: shared stem and layer1, two groups at
# layer2 and layer3, four at layer4
BRANCHED = [[TASKS], [TASKS], [['t0', 't1', 't2'], ['t3', 't4']],
            [['t0', 't1', 't2'], ['t3', 't4']],
            [['t0', 't1'], ['t2'], ['t3'], ['t4']]]


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(fns: Dict[str, Callable[[], torch.Tensor]], device: str,
               repeats: int, warmup: int = 3) -> Dict[str, float]:
    """Median seconds of one forward+backward of each function.

    The functions are timed in interleaved rounds, so that load from other
    processes on a shared machine hits all of them alike.
    """
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn().backward()
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def encoder_step(enc: BranchedEncoder, x: torch.Tensor) -> Callable:

    def step():
        outs = enc(x)
        return sum(f.float().mean() for feats in outs.values() for f in feats)

    return step


def node_steps(enc: BranchedEncoder, x: torch.Tensor) -> Dict[str, Callable]:
    """One step function per unique node of the tree, on its real input."""
    with torch.no_grad():
        inputs: List[torch.Tensor] = []
        h = x
        for b in range(enc.num_blocks):
            inputs.append(h)
            h = enc.nodes[b][0](h)
    fns = {}
    for b, level in enumerate(enc.nodes):
        # later inputs need grad as in the full network (their backward
        # reaches the block below); the image does not
        inp = inputs[b].detach().requires_grad_(b > 0)
        for g, node in enumerate(level):
            fns[f'node{b}.{g}'] = (
                lambda n=node, i=inp: n(i).float().mean())
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backbone', default='resnet18-thin',
                        choices=sorted(BACKBONES))
    parser.add_argument('--size', type=int, nargs=2, default=(32, 64))
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    x = torch.randn(args.batch, 3, *args.size, device=args.device)
    backbone = BACKBONES[args.backbone]
    n = len(TASKS)
    trees = dict(branched=BRANCHED, all_shared=all_shared(TASKS, 5),
                 separate=fully_separate(TASKS, 5))
    fns: Dict[str, Callable] = {}
    encoders = {}
    for name, tree in trees.items():
        encoders[name] = BranchedEncoder(backbone, TASKS, tree).to(
            args.device).train()
        fns[name] = encoder_step(encoders[name], x)
    fns.update(node_steps(encoders['branched'], x))
    params = encoders['branched'].tree_params()
    timed = time_steps(fns, args.device, args.repeats)
    results = {k: timed[k] for k in trees}
    results['ideal'] = sum(v for k, v in timed.items() if k.startswith('node'))
    print(f'backbone {args.backbone}, input {args.batch}x3x{args.size[0]}x'
          f'{args.size[1]}, device {args.device}, {n} tasks, '
          f'branched tree params {params / 1e6:.2f}M')
    print('| encoder | step time (ms) | images/s | vs branched |')
    print('| --- | --- | --- | --- |')
    for name in ('branched', 'ideal', 'all_shared', 'separate'):
        t = results[name]
        print(f'| {name} | {t * 1e3:.1f} | {args.batch / t:.0f} | '
              f'{t / results["branched"]:.2f}x |')
    print(f'branched / ideal = {results["branched"] / results["ideal"]:.3f}')


if __name__ == '__main__':
    main()
