"""A training iteration in the mmengine Runner against a bare PyTorch loop.

    python tools/analysis/benchmark_runner_loop.py \\
        [CONFIG] [--iters 60] [--warmup 5] [--out FILE.json]

Three loops train the same model (the config's, same initial weights and
optimiser) in one process, taking turns one iteration at a time (each in
its own thread, only one running at any moment), so that load from other
processes hits them alike:

* ``runner``: the config's Runner as it is (per-sample data path: the data
  set's pipeline per sample, ``pseudo_collate``, the data preprocessor's
  ``cast_data`` and stacking), every default hook;
* ``runner-precollated``: the same Runner with its training set served
  pre-collated (:class:`PrecollatedDataset`);
* ``bare``: a plain PyTorch loop on prefetched, pre-stacked batches of the
  same data: normalise, encoder, heads, one cross-entropy per task, backward,
  optimiser step.

An iteration of a Runner is timed from the moment it gets its turn (right
after its previous iteration's last hook) to its next iteration's last
hook: fetching the batch, every hook, the training step. Reported: median
milliseconds per iteration of each loop and each Runner's median ratio to
the bare loop (paired by round), on the wall clock and the thread's CPU
clock (steadier on a shared machine; run with OMP_NUM_THREADS=1).
"""
import argparse
import copy
import os
import os.path as osp
import platform
import statistics
import tempfile
import threading
import time
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook

import branched_mtl  # noqa: F401  (compat before mmseg; registers our types)
from branched_mtl.utils.io import dump_json_atomic

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT = osp.join(ROOT, 'configs', 'multidigits',
                   'resnet18-thin_all-shared_multidigits.py')


class Turns:
    """Strict round-robin between threads, with per-turn timing."""

    def __init__(self, names: List[str], warmup: int) -> None:
        self.names = names
        self.cond = threading.Condition()
        self.current = 0
        self.warmup = warmup
        self.wall: Dict[str, List[float]] = {n: [] for n in names}
        self.cpu: Dict[str, List[float]] = {n: [] for n in names}
        self.seen: Dict[str, int] = {n: 0 for n in names}
        self.start: Dict[str, tuple] = {}
        self.done: set = set()

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.names[self.current] == name)
        self.start[name] = (time.perf_counter(), time.thread_time())

    def lap(self, name: str, last: bool = False) -> None:
        """End one iteration of ``name`` and pass the turn on."""
        w0, c0 = self.start[name]
        wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
        self.seen[name] += 1
        if self.seen[name] > self.warmup:
            self.wall[name].append(wall)
            self.cpu[name].append(cpu)
        with self.cond:
            if last:
                self.done.add(name)
            left = [i for i, n in enumerate(self.names)
                    if n not in self.done]
            if left:
                nxt = [i for i in left if i > self.current] or left
                self.current = nxt[0]
            self.cond.notify_all()
        if not last:
            self.wait(name)


class _TurnHook(Hook):
    """Last hook of every iteration: ends the lap and waits for the turn."""
    priority = 'LOWEST'

    def __init__(self, turns: Turns, name: str, iters: int) -> None:
        self.turns, self.name, self.iters = turns, name, iters

    def before_train(self, runner) -> None:
        self.turns.wait(self.name)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.turns.lap(self.name, last=runner.iter + 1 >= self.iters)


def build_runner_cfg(config: str, work_dir: str, iters: int,
                     precollated: bool):
    from branched_mtl.apis.runner import load_config
    from branched_mtl.datasets import precollate_loader
    cfg = load_config(config, work_dir, {
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters + 1,
        'train_cfg.val_begin': iters + 1,
        'default_hooks.checkpoint.interval': iters + 1,
        'default_hooks.checkpoint.save_last': False,
        'param_scheduler.0.end': iters})
    if precollated:
        precollate_loader(cfg.train_dataloader)
    return cfg


def bare_loop(cfg, turns: Turns, iters: int) -> None:
    """The bare PyTorch loop on prefetched batches of the same data."""
    from branched_mtl.registry import DATASETS, build_stock
    torch.manual_seed(0)
    model = build_stock(copy.deepcopy(cfg.model))
    model.init_weights()
    model.train()
    dataset = build_stock(copy.deepcopy(cfg.train_dataloader.dataset),
                          DATASETS)
    batch = cfg.train_dataloader.batch_size
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=g)
    items = [dataset[int(i)] for i in order[:batch * 8]]
    tasks = model.tasks
    images = torch.stack([it['inputs'] for it in items])
    labels = {t: torch.cat([it['data_samples'].get(t).gt_label
                            for it in items]) for t in tasks}
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre['mean']).view(1, -1, 1, 1)
    std = torch.tensor(pre['std']).view(1, -1, 1, 1)
    optim = cfg.optim_wrapper.optimizer
    opt = getattr(torch.optim, optim['type'])(
        [p for p in model.parameters() if p.requires_grad],
        **{k: v for k, v in optim.items() if k != 'type'})
    turns.wait('bare')
    for it in range(iters):
        s = slice((it % 8) * batch, (it % 8 + 1) * batch)
        x = (images[s].float() - mean) / std
        logits = model.head(model.encoder(x))
        loss = sum(F.cross_entropy(logits[t], labels[t][s]) for t in tasks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        turns.lap('bare', last=it + 1 >= iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=DEFAULT)
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--out', help='JSON file for the results')
    args = parser.parse_args()
    from branched_mtl.apis.runner import build_runner
    names = ['runner', 'runner-precollated', 'bare']
    turns = Turns(names, args.warmup)
    load_start = list(os.getloadavg())
    tmp = tempfile.mkdtemp(prefix='bench_loop_')
    runners = {}
    for name in names[:2]:
        cfg = build_runner_cfg(args.config, osp.join(tmp, name), args.iters,
                               name == 'runner-precollated')
        cfg.experiment_name = f'bench_loop_{name}_{os.getpid()}'
        runner = build_runner(cfg)
        runner.register_hook(_TurnHook(turns, name, args.iters))
        runners[name] = runner
    threads = [threading.Thread(target=r.train) for r in runners.values()]
    threads.append(threading.Thread(
        target=bare_loop, args=(cfg, turns, args.iters)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = dict(config=args.config, iters=args.iters, warmup=args.warmup,
                  torch=torch.__version__,
                  torch_threads=torch.get_num_threads(),
                  machine=platform.processor() or platform.machine(),
                  cpus=os.cpu_count(), load_avg_start=load_start,
                  load_avg_end=list(os.getloadavg()))
    print(f'{args.iters} iterations each ({args.warmup} warm-up not '
          f'counted), {torch.get_num_threads()} thread(s); load average '
          f'{load_start[0]:.1f} -> {result["load_avg_end"][0]:.1f}')
    print('| clock | loop | ms per iteration (median) | / bare (median of '
          'rounds) |')
    print('| --- | --- | --- | --- |')
    for clock, times in (('wall', turns.wall), ('thread CPU', turns.cpu)):
        key = 'wall' if clock == 'wall' else 'cpu'
        result[key] = {}
        for name in names:
            ratios = [a / b for a, b in zip(times[name], times['bare'])]
            med = statistics.median(times[name])
            result[key][name] = dict(ms=med * 1e3,
                                     ratio=statistics.median(ratios))
            print(f'| {clock} | {name} | {med * 1e3:.1f} | '
                  f'{statistics.median(ratios):.3f} |')
    if args.out:
        dump_json_atomic(result, args.out)


if __name__ == '__main__':
    main()
