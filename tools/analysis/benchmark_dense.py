"""Data pipeline and training throughput on SyntheticScenes (dense tasks).

Measures, for a dense config (default: dilated ResNet-50 + three PSP heads at
256x512):

1. pipeline: samples/s of the training data set (rendering + transforms +
   packing) in one process, and of the DataLoader with its workers;
2. training: images/s of full training steps (preprocessor, forward, loss,
   backward, optimizer step) after warm-up.

The pipeline is not the bottleneck when (1) exceeds (2). Results go to
stdout and, with --out, to a JSON file.

Example:
    python tools/analysis/benchmark_dense.py \
        configs/synthetic_scenes/resnet50-d8-psp_all-shared_synthetic-scenes-256x512.py \
        --batch-size 2 --iters 3 --out work_dirs/benchmark_dense.json
"""
import argparse
import json
import os
import platform
import time

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from torch.utils.data import DataLoader

import branched_mtl  # noqa: F401
from branched_mtl.registry import DATASETS, MODELS


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--iters', type=int, default=3,
                        help='timed training steps')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--samples', type=int, default=24,
                        help='samples timed through the pipeline')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', help='JSON file for the results')
    return parser.parse_args()


def time_pipeline(dataset, samples: int) -> float:
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def time_loader(dataset, batch_size: int, workers: int, samples: int):
    if workers == 0:
        return None
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        collate_fn=pseudo_collate, shuffle=False)
    it = iter(loader)
    next(it)  # workers started
    start, seen = time.perf_counter(), 0
    for batch in it:
        seen += len(batch['inputs'])
        if seen >= samples:
            break
    return seen / (time.perf_counter() - start)


def time_training(model, dataset, batch_size: int, warmup: int, iters: int,
                  device: str) -> float:
    model.to(device).train()
    optim = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    batch = pseudo_collate([dataset[i] for i in range(batch_size)])

    def step():
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return iters * batch_size / (time.perf_counter() - start)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds_cfg = cfg.train_dataloader.dataset.copy()
        ds_cfg['num_samples'] = max(args.samples, args.batch_size)
        dataset = DATASETS.build(ds_cfg)
        model = MODELS.build(cfg.model)
    size = tuple(dataset.img_size) if hasattr(dataset, 'img_size') else None
    results = dict(
        config=args.config, device=args.device, img_size=size,
        batch_size=args.batch_size, torch_threads=torch.get_num_threads(),
        cpus=os.cpu_count(), machine=platform.processor() or
        platform.machine(), tasks=list(dataset.tasks))
    results['pipeline_samples_per_s'] = time_pipeline(dataset, args.samples)
    results['loader_samples_per_s'] = time_loader(
        dataset, args.batch_size, args.workers, args.samples)
    results['loader_workers'] = args.workers
    results['train_images_per_s'] = time_training(
        model, dataset, args.batch_size, args.warmup, args.iters,
        args.device)
    results['train_iters_timed'] = args.iters
    pipe = results['loader_samples_per_s'] or results[
        'pipeline_samples_per_s']
    results['pipeline_is_bottleneck'] = pipe < results['train_images_per_s']
    print(json.dumps(results, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
