"""RSA affinity at CelebA scale: N tasks, every split of the encoder, K
probe samples, with feature shapes taken from a config's encoder.

    python tools/analysis/benchmark_rsa.py [CONFIG] [--tasks 40]
        [--samples 500] [--pool S] [--device cuda|cpu]
        [--measure-tasks M] [--paths torch numpy] [--out R.json]

Features are what ``AffinityHook`` stores: every split's block output
(K, C, H, W) in float16, here random (post-ReLU normal; the time does not
depend on the values). Their shapes come from one forward of the config's
stock backbone, split as the config splits it, at the input size of the
config's test pipeline. ``--pool S`` average-pools every map to at most S x S
first (a reduction the hook does not make today) to show what it would buy.

Per split, the features of all N tasks are made on the device (not timed),
then ``rsa_affinity(features, device=...)`` is timed, so on a GPU the figure
is "features already there". ``--measure-tasks M < N`` (the CPU default:
the full case would take an hour on one core) times the RDM of M tasks only
and the Spearman step on N triangles, and extrapolates: the RDMs of the N
tasks are independent and equally costly, so the total is N times the mean
RDM time plus the Spearman time; the table says so. Times are wall time on
a GPU and process CPU time on the CPU.
"""
import argparse
import platform
import statistics
import time
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

import branched_mtl  # noqa: F401
from branched_mtl.affinity.rsa import (rdm_upper_triangle, rsa_affinity,
                                       spearman_matrix)
from branched_mtl.models import split_backbone
from branched_mtl.registry import build_stock
from branched_mtl.utils.io import dump_json_atomic

DEFAULT_CONFIG = 'configs/celeba/vgg16_all-shared_celeba.py'


def input_size(cfg: Config) -> Tuple[int, int]:
    """(H, W) of the config's test pipeline Resize."""
    for t in cfg.test_dataloader.dataset.get('pipeline', []):
        if str(t.get('type', '')).endswith('Resize') and 'scale' in t:
            w, h = t['scale']  # mmpretrain/mmcv scale is (w, h)
            return int(h), int(w)
    raise ValueError('the config\'s test pipeline has no Resize with a '
                     'scale; pass --size H W')


def split_shapes(cfg: Config, size: Tuple[int, int],
                 pool: int = 0) -> List[Tuple[str, Tuple[int, ...]]]:
    """(split name, per-sample feature shape) for every sharable block."""
    enc = cfg.model.encoder
    stock = build_stock(enc.backbone)
    blocks = split_backbone(stock, enc.get('granularity', 'stage'))
    x = torch.zeros(1, enc.backbone.get('in_channels', 3), *size)
    shapes = []
    with torch.no_grad():
        for b in blocks:
            b.module.eval()
            x = b.module(x)
            y = x
            if pool and max(y.shape[-2:]) > pool:
                y = F.adaptive_avg_pool2d(
                    y, (min(pool, y.shape[-2]), min(pool, y.shape[-1])))
            shapes.append((b.name, tuple(y.shape[1:])))
    return shapes


def make_features(num: int, samples: int, shape: Tuple[int, ...],
                  device: str, seed: int) -> List[torch.Tensor]:
    """``num`` float16 (samples, *shape) post-ReLU random feature tensors,
    made in slices of samples (no float32 copy of a whole task)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    feats = []
    for _ in range(num):
        f = torch.empty((samples, ) + shape, dtype=torch.float16,
                        device=device)
        for s in range(0, samples, 50):
            part = f[s:s + 50]
            part.copy_(torch.randn(part.shape, generator=gen,
                                   device=device).relu_())
        feats.append(f)
    return feats


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, device: str) -> Tuple[object, float]:
    clock = (time.perf_counter if device.startswith('cuda') else
             time.process_time)
    _sync(device)
    start = clock()
    out = fn()
    _sync(device)
    return out, clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG)
    parser.add_argument('--tasks', type=int, default=40)
    parser.add_argument('--samples', type=int, default=500)
    parser.add_argument('--size', type=int, nargs=2, default=None)
    parser.add_argument('--pool', type=int, default=0,
                        help='average-pool maps to at most S x S (0: off)')
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--measure-tasks', type=int, default=None,
                        help='tasks whose RDMs are timed (default: all on a '
                        'GPU, 1 on the CPU)')
    parser.add_argument('--paths', nargs='+', default=None,
                        choices=['torch', 'numpy'],
                        help='implementations (default: torch on a GPU, '
                        'torch and numpy on the CPU)')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    cuda = args.device.startswith('cuda')
    measure = args.measure_tasks or (args.tasks if cuda else 1)
    measure = min(measure, args.tasks)
    paths = args.paths or (['torch'] if cuda else ['torch', 'numpy'])
    if 'numpy' in paths and cuda:
        parser.error('--paths numpy runs on the CPU; use --device cpu')

    cfg = Config.fromfile(args.config)
    size = tuple(args.size) if args.size else input_size(cfg)
    shapes = split_shapes(cfg, size, args.pool)
    dims = [int(np.prod(s)) for _, s in shapes]
    flops = sum(2 * args.samples**2 * d for d in dims) * args.tasks
    fp16_gb = sum(dims) * args.samples * args.tasks * 2 / 1e9
    device_name = (torch.cuda.get_device_name(args.device) if cuda else
                   f'{platform.processor() or platform.machine()} CPU, '
                   f'{torch.get_num_threads()} threads')
    clock = 'wall' if cuda else 'process CPU'
    print(f'{args.config}: {len(shapes)} splits at {size[0]}x{size[1]}'
          + (f', pooled to <= {args.pool}x{args.pool}' if args.pool else '')
          + f'; N = {args.tasks}, K = {args.samples}; features '
          f'{fp16_gb:.1f} GB in float16; Gram matrices '
          f'{flops / 1e12:.2f} TFLOP (float64)')
    print(f'device {args.device} ({device_name}), torch {torch.__version__},'
          f' {clock} time; RDMs timed for {measure} of {args.tasks} tasks')
    rows = []
    totals = {p: 0.0 for p in paths}
    for l, ((name, shape), dim) in enumerate(zip(shapes, dims)):
        row = dict(split=name, shape=list(shape), dim=dim)
        feats = make_features(measure, args.samples, shape, args.device,
                              seed=l)
        for path in paths:
            dev = args.device if path == 'torch' else None
            inputs = feats if path == 'torch' else [
                f.cpu().numpy() for f in feats]
            if measure == args.tasks:
                _, sec = timed(lambda: rsa_affinity(inputs, device=dev),
                               args.device)
                row[path] = dict(total_s=sec)
            else:
                rdm_s, tris = [], []
                for f in inputs:
                    tri, sec = timed(
                        lambda f=f: rdm_upper_triangle(f, device=dev),
                        args.device)
                    rdm_s.append(sec)
                    tris.append(tri)
                # N triangles for the Spearman step: the measured ones with
                # noise (only the time is wanted)
                gen = np.random.default_rng(l)
                more = []
                for i in range(args.tasks):
                    base = tris[i % len(tris)]
                    if path == 'torch':
                        more.append(base + 1e-3 * torch.rand(
                            base.shape, dtype=base.dtype, device=base.device))
                    else:
                        more.append(base + 1e-3 * gen.random(base.shape))
                _, sp_s = timed(lambda: spearman_matrix(more), args.device)
                rdm = statistics.mean(rdm_s)
                sec = args.tasks * rdm + sp_s
                row[path] = dict(rdm_per_task_s=rdm, spearman_s=sp_s,
                                 total_s=sec, extrapolated=True)
            totals[path] += sec
        del feats
        if cuda:
            torch.cuda.empty_cache()
        rows.append(row)
        print(f'| {name} | {"x".join(map(str, shape))} | ' + ' | '.join(
            f'{path} {row[path]["total_s"]:.2f} s' for path in paths) + ' |',
              flush=True)
    note = '' if measure == args.tasks else (
        f' (extrapolated: {args.tasks} x mean RDM time of {measure} task(s)'
        ' + Spearman on N triangles)')
    for path in paths:
        print(f'total {path}: {totals[path]:.2f} s{note}')
    if args.out:
        dump_json_atomic(dict(config=args.config, size=list(size),
                              pool=args.pool, tasks=args.tasks,
                              samples=args.samples, device=args.device,
                              device_name=device_name, clock=clock,
                              measured_tasks=measure, flops=flops,
                              float16_gb=fp16_gb, rows=rows, totals=totals),
                         args.out)


if __name__ == '__main__':
    main()
