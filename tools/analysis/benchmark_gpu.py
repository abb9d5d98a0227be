"""Training throughput, memory and MFU: stock mmseg against our models.

    python tools/analysis/benchmark_gpu.py [--out FILE.json]   # on a GPU
    python tools/analysis/benchmark_gpu.py --device cpu --quick  # smoke run

Models (every task a PSP semantic-segmentation head on a dilated ResNet,
output stride 8, as in our dense configs):

- ``stock``: mmseg ``EncoderDecoder`` (one head), the reference;
- ``ours-1``: ``BranchedMultiTaskModel`` with one task (wrapper overhead);
- ``all-shared-3``, ``branched-3``, ``separate-3``: three tasks, one encoder
  / a tree split at layer3 and layer4 / three encoders;
- ``branched-5``: five tasks on a tree in the spirit of the paper's.

Modes: ``fp32``; ``bf16`` (mmengine's ``AmpOptimWrapper``,
``dtype='bfloat16'``); ``bf16+cl`` (and ``channels_last``);
``bf16+cl+compile`` (and ``torch.compile`` of ``train_step``, as the
Runner's ``compile=True`` does). A step is mmengine's whole
``model.train_step`` (preprocessor, forward, losses, backward, SGD step),
median over ``--steps`` after ``--warmup``.

MFU = training FLOPs per image x images/s / the device's peak. Training
FLOPs are 3x the forward FLOPs (backward ~ 2x forward) and the forward
FLOPs come from mmengine's analysis (``FlopAnalyzer``), which counts one
multiply-add as one; a multiply-add is two FLOPs here, as in the peak
figures. Batch norm, pooling and resizing are not counted. The peak
assumed is printed; it is the dense (no sparsity) tensor-core figure for
bf16 and the non-tensor-core FP32 figure for fp32 (cuDNN convolutions may
use TF32 under torch's defaults, so fp32 MFU can look high).

Recombination jobs per hour (the tournament sweep, per-pair mode): the
step time of a one-task network whose bottom ``l`` blocks are frozen, for
every split ``l``, in ``bf16+cl``, times ``--sweep-iters``, plus a declared
``--job-overhead-s`` per job (process start-up, imports, building the
runner and data, probing), averaged over the splits.

``--time-budget`` (s) bounds the run: cells that would not fit are
reported as skipped. Results print as a markdown table and go to ``--out``
(JSON, written atomically).
"""
import argparse
import contextlib
import copy
import json
import os.path as osp
import platform
import statistics
import sys
import time
import traceback
import warnings
from typing import Dict, List, Optional, Sequence

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmark_overhead as bo  # noqa: E402  (model configs, batches)

from branched_mtl.registry import build_stock  # noqa: E402
from branched_mtl.utils.console import (ignore_known_warnings,  # noqa: E402
                                        quiet_logger)
from branched_mtl.utils.io import dump_json_atomic  # noqa: E402

# Dense peak TFLOP/s by device name (first match wins; a multiply-add is
# two FLOPs). NVIDIA data sheets; H200 has the H100 SXM's compute.
PEAKS = [
    ('H100 PCIe', dict(fp32=51.2, bf16=756.0)),
    ('H100 NVL', dict(fp32=60.0, bf16=835.0)),
    ('H100', dict(fp32=66.9, bf16=989.4)),   # SXM5
    ('H200', dict(fp32=66.9, bf16=989.4)),
    ('H800', dict(fp32=66.9, bf16=989.4)),
    ('A100', dict(fp32=19.5, bf16=312.0)),
    ('L40S', dict(fp32=91.6, bf16=362.1)),
]

MODES = ('fp32', 'bf16', 'bf16+cl', 'bf16+cl+compile')
T3 = ['t0', 't1', 't2']
T5 = ['t0', 't1', 't2', 't3', 't4']


def model_specs() -> Dict[str, dict]:
    """Name -> tasks and tree (None: the stock mmseg model)."""
    return {
        'stock': dict(tasks=['t0'], tree='stock'),
        'ours-1': dict(tasks=['t0'], tree=None),
        'all-shared-3': dict(tasks=T3, tree=None),
        # shared stem..layer2, two groups at layer3, one branch per task
        'branched-3': dict(tasks=T3, tree=[[T3]] * 3 + [
            [['t0', 't1'], ['t2']], [['t0'], ['t1'], ['t2']]]),
        'separate-3': dict(tasks=T3, tree=[[[t] for t in T3]] * 5),
        'branched-5': dict(tasks=T5, tree=[[T5], [T5],
                                           [['t0', 't1', 't2'], ['t3', 't4']],
                                           [['t0', 't1', 't2'], ['t3', 't4']],
                                           [['t0', 't1'], ['t2'], ['t3'],
                                            ['t4']]]),
    }


def peak_for(device: str, override: Dict[str, Optional[float]]
             ) -> Dict[str, Optional[float]]:
    """Peak TFLOP/s per precision for this device (None: unknown)."""
    name = torch.cuda.get_device_name() if device.startswith('cuda') else ''
    peak: Dict[str, Optional[float]] = dict(fp32=None, bf16=None)
    for key, values in PEAKS:
        if key in name:
            peak = dict(values)
            break
    for k, v in override.items():
        if v is not None:
            peak[k] = v
    return peak


def build_model(name: str, spec: dict, backbone: str, channels_last: bool,
                device: str, frozen_blocks: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    with quiet_logger():
        if spec['tree'] == 'stock':
            model = build_stock(bo.stock_model_cfg(backbone))
            model.init_weights()
            if channels_last:
                # the stock model has no switch: weights once, inputs at
                # the backbone's door (as ours converts in forward)
                model.to(memory_format=torch.channels_last)
                model.backbone.register_forward_pre_hook(
                    lambda mod, args: (args[0].contiguous(
                        memory_format=torch.channels_last), ))
        else:
            model = build_stock(bo.branched_model_cfg(
                backbone, spec['tasks'], spec['tree'],
                frozen_blocks=frozen_blocks, channels_last=channels_last))
            model.init_weights()
    return model.to(device).train()


def forward_gflops(model: torch.nn.Module, size: Sequence[int],
                   device: str) -> float:
    """Forward GFLOPs per image (mmengine's count x 2 multiply-add)."""
    from mmengine.analysis import FlopAnalyzer
    x = torch.zeros(1, 3, *size, device=device)
    model.eval()
    with quiet_logger(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        macs = analyzer.total()
    model.train()
    return 2 * macs / 1e9


def make_wrapper(model: torch.nn.Module, amp: bool, device: str):
    """mmengine's OptimWrapper, or AmpOptimWrapper(bfloat16) for bf16.

    AmpOptimWrapper asserts a CUDA device; on the CPU (smoke runs) bf16 is
    mmengine's ``autocast`` around the plain wrapper, which is what
    AmpOptimWrapper's ``optim_context`` adds there (no loss scaling).
    """
    if amp and device.startswith('cuda'):
        return bo.sgd_wrapper(model, 'AmpOptimWrapper', dtype='bfloat16')
    wrapper = bo.sgd_wrapper(model)
    if amp:
        from mmengine.runner.amp import autocast
        base = wrapper.optim_context

        @contextlib.contextmanager
        def optim_context(m):
            with base(m), autocast(device_type='cpu', dtype=torch.bfloat16):
                yield

        wrapper.optim_context = optim_context
    return wrapper


def time_cell(model, data: dict, wrapper, device: str, warmup: int,
              steps: int, compile_backend: Optional[str]) -> dict:
    """Median step time and peak memory of ``steps`` training steps."""
    step_fn = model.train_step
    if compile_backend:
        step_fn = torch.compile(model.train_step, backend=compile_backend)
    copies = [copy.deepcopy(data) for _ in range(warmup + steps)]
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times: List[float] = []
    start_all = time.perf_counter()
    for i in range(warmup + steps):
        bo.sync(device)
        start = time.perf_counter()
        log = step_fn(copies.pop(), wrapper)
        bo.sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    loss = float(log['loss'].detach())
    if loss != loss:
        raise FloatingPointError('loss is NaN')
    return dict(
        step_s=statistics.median(times),
        wall_s=time.perf_counter() - start_all,
        peak_mem_gib=(torch.cuda.max_memory_allocated() / 2**30
                      if device.startswith('cuda') else None),
        loss=loss)


def free(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.empty_cache()


def run(args) -> dict:
    t0 = time.perf_counter()
    size, batch = tuple(args.size), args.batch
    peak = peak_for(args.device, dict(fp32=args.peak_fp32,
                                      bf16=args.peak_bf16))
    specs = model_specs()
    if args.models:
        specs = {k: specs[k] for k in args.models}
    modes = [m for m in MODES if not (args.no_compile and 'compile' in m)]
    # fixed input size: cuDNN's autotuner (env_cfg.cudnn_benchmark) pays
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    result = dict(
        device=args.device,
        device_name=(torch.cuda.get_device_name()
                     if args.device.startswith('cuda') else
                     platform.processor() or platform.machine()),
        torch=torch.__version__, backbone=args.backbone, size=list(size),
        batch=batch, warmup=args.warmup, steps=args.steps,
        peak_tflops=peak,
        compile_backend=None if args.no_compile else args.compile_backend,
        cudnn_benchmark=not args.no_cudnn_benchmark,
        flops_note='2 x mmengine FlopAnalyzer multiply-adds; training = 3 x '
        'forward', cells=[], recombination=None)
    budget = args.time_budget

    def left() -> float:
        return budget - (time.perf_counter() - t0)

    gflops: Dict[str, float] = {}
    params: Dict[str, int] = {}
    # priority order: every model's plain modes, the recombination jobs,
    # then compile (minutes of compilation per model)
    plan = [(m, mode) for mode in modes if 'compile' not in mode
            for m in specs] + [(None, None)] + [
                (m, mode) for mode in modes if 'compile' in mode
                for m in specs]
    for name, mode in plan:
        if name is None:
            if not args.no_recombination:
                result['recombination'] = recombination(args, left)
            continue
        spec = specs[name]
        cell = dict(model=name, tasks=len(spec['tasks']), mode=mode)
        result['cells'].append(cell)
        need = args.compile_reserve if 'compile' in mode else 0.0
        if left() < need + args.cell_reserve:
            cell['skipped'] = 'time budget'
            continue
        model = None
        try:
            model = build_model(name, spec, args.backbone, 'cl' in mode,
                                args.device)
            if name not in gflops:
                gflops[name] = forward_gflops(model, size, args.device)
                params[name] = sum(p.numel() for p in model.parameters())
            stock_data, our_data = bo.make_batch(batch, size,
                                                 tasks=spec['tasks'])
            data = stock_data if spec['tree'] == 'stock' else our_data
            wrapper = make_wrapper(model, 'bf16' in mode, args.device)
            cell.update(time_cell(
                model, data, wrapper, args.device, args.warmup, args.steps,
                args.compile_backend if 'compile' in mode else None))
            cell['img_s'] = batch / cell['step_s']
            cell['params_m'] = params[name] / 1e6
            cell['fwd_gflops'] = gflops[name]
            p = peak['bf16' if 'bf16' in mode else 'fp32']
            cell['mfu'] = (3 * gflops[name] * 1e9 * cell['img_s']
                           / (p * 1e12)) if p else None
        except Exception as e:  # OOM, a compile failure: keep the rest
            cell['error'] = f'{type(e).__name__}: {str(e)[:300]}'
            if args.verbose:
                traceback.print_exc()
        finally:
            del model
            free(args.device)
        # one line per cell as it ends, so a run killed at its limit
        # still leaves what it measured in the log
        print('cell', json.dumps(cell), flush=True)
    result['total_s'] = time.perf_counter() - t0
    return result


def recombination(args, left) -> dict:
    """Per-pair recombination jobs per hour (see the module docstring)."""
    size, batch = tuple(args.size), args.batch
    spec = dict(tasks=['t0'], tree=None)
    mode = 'bf16+cl'
    splits: Dict[int, float] = {}
    out = dict(mode=mode, iters=args.sweep_iters,
               job_overhead_s=args.job_overhead_s, batch=batch,
               overhead_note='declared, not measured: process start-up, '
               'imports, runner and data set-up, probe pass')
    for split in range(1, 6):
        if left() < args.cell_reserve:
            out['skipped_splits'] = out.get('skipped_splits', []) + [split]
            continue
        model = None
        try:
            model = build_model('ours-1', spec, args.backbone, True,
                                args.device, frozen_blocks=split)
            _, data = bo.make_batch(batch, size, tasks=spec['tasks'])
            cell = time_cell(model, data, make_wrapper(model, True,
                                                       args.device),
                             args.device, args.warmup, args.steps, None)
            splits[split] = cell['step_s']
        except Exception as e:
            out.setdefault('errors', {})[split] = f'{type(e).__name__}: {e}'
        finally:
            del model
            free(args.device)
    out['step_s'] = splits
    if splits:
        job_s = statistics.mean(args.sweep_iters * s for s in splits.values()
                                ) + args.job_overhead_s
        out['job_s'] = job_s
        out['jobs_per_hour'] = 3600.0 / job_s
    return out


def table(result: dict) -> str:
    peak = result['peak_tflops']
    lines = [
        f"device {result['device_name']} ({result['device']}), torch "
        f"{result['torch']}; {result['backbone']} + PSP heads, batch "
        f"{result['batch']} x 3 x {result['size'][0]} x {result['size'][1]}"
        f"; median of {result['steps']} steps after {result['warmup']}; "
        f"cudnn.benchmark {result['cudnn_benchmark']}",
        f"peak assumed: fp32 {peak['fp32']} TFLOP/s, bf16 {peak['bf16']} "
        'TFLOP/s (dense); FLOPs: ' + result['flops_note'], '',
        '| model | tasks | params (M) | fwd GFLOPs/img | mode | img/s | '
        'peak mem (GiB) | MFU |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for c in result['cells']:
        if 'img_s' not in c:
            why = c.get('skipped') or c.get('error', '')
            lines.append(f"| {c['model']} | {c['tasks']} | | | {c['mode']} "
                         f'| {why} | | |')
            continue
        mem = (f"{c['peak_mem_gib']:.1f}" if c['peak_mem_gib'] is not None
               else 'n/a')
        mfu = f"{100 * c['mfu']:.1f}%" if c['mfu'] is not None else 'n/a'
        lines.append(
            f"| {c['model']} | {c['tasks']} | {c['params_m']:.1f} | "
            f"{c['fwd_gflops']:.3g} | {c['mode']} | {c['img_s']:.1f} | "
            f'{mem} | {mfu} |')
    rec = result.get('recombination')
    if rec:
        steps = ', '.join(f'l={k}: {v * 1e3:.0f} ms'
                          for k, v in rec['step_s'].items())
        lines += ['', f"recombination (per-pair, {rec['mode']}, batch "
                  f"{rec['batch']}): step {steps}"]
        if 'jobs_per_hour' in rec:
            lines.append(
                f"{rec['iters']} iterations + {rec['job_overhead_s']:.0f} s "
                f"per job ({rec['overhead_note']}): {rec['job_s']:.0f} s "
                f"per job, {rec['jobs_per_hour']:.0f} jobs per hour")
    lines.append(f"\ntotal {result['total_s']:.0f} s")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda'
                        if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: narrow ResNet-18, 32x64, batch 2, '
                        '1 + 2 steps')
    parser.add_argument('--backbone', choices=sorted(bo.MODELS_))
    parser.add_argument('--size', type=int, nargs=2)
    parser.add_argument('--batch', type=int)
    parser.add_argument('--warmup', type=int)
    parser.add_argument('--steps', type=int)
    parser.add_argument('--models', nargs='+', choices=list(model_specs()))
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument('--compile-backend', default='inductor')
    parser.add_argument('--no-cudnn-benchmark', action='store_true')
    parser.add_argument('--no-recombination', action='store_true')
    parser.add_argument('--sweep-iters', type=int, default=500,
                        help='iterations of one recombined run (the '
                        'SyntheticScenes branch config: 500)')
    parser.add_argument('--job-overhead-s', type=float, default=30.0,
                        help='declared per-job overhead in seconds')
    parser.add_argument('--peak-fp32', type=float,
                        help='peak TFLOP/s to assume for fp32')
    parser.add_argument('--peak-bf16', type=float,
                        help='peak TFLOP/s to assume for bf16')
    parser.add_argument('--time-budget', type=float, default=400.0,
                        help='seconds; cells that would not fit are skipped')
    parser.add_argument('--compile-reserve', type=float, default=150.0,
                        help='seconds a compile cell needs at least')
    parser.add_argument('--cell-reserve', type=float, default=15.0)
    parser.add_argument('--out', help='JSON file for the results')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    quick = dict(backbone='resnet18-narrow-d8', size=(32, 64), batch=2,
                 warmup=1, steps=2)
    full = dict(backbone='resnet50-d8', size=(256, 512), batch=16,
                warmup=3, steps=10)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def main(argv=None) -> dict:
    ignore_known_warnings()
    args = parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit('benchmark_gpu: --device cuda but no CUDA device; '
                         'use --device cpu --quick for a smoke run')
    cudnn_benchmark = torch.backends.cudnn.benchmark
    try:
        result = run(args)
    finally:  # the caller's setting back (the tests run in one process)
        torch.backends.cudnn.benchmark = cudnn_benchmark
    print(table(result))
    if args.out:
        dump_json_atomic(result, args.out)
    return result


if __name__ == '__main__':
    main()
