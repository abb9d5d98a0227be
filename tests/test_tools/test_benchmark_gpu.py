"""tools/analysis/benchmark_gpu.py and benchmark_overhead.py run end to end
(on the CPU in smoke size) and report what they claim to measure."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ANALYSIS = osp.join(ROOT, 'tools', 'analysis')


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ANALYSIS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def gpu():
    return _load('benchmark_gpu')


def test_quick_cpu_run_writes_table_and_json(gpu, tmp_path, capsys):
    out = tmp_path / 'gpu.json'
    gpu.main(['--device', 'cpu', '--quick', '--no-compile', '--steps', '1',
              '--models', 'stock', 'ours-1', 'branched-3',
              '--sweep-iters', '100', '--job-overhead-s', '20',
              '--out', str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    cells = {(c['model'], c['mode']): c for c in result['cells']}
    # the compile mode is left out, the other three run for every model
    assert set(cells) == {(m, mode) for m in ('stock', 'ours-1',
                                              'branched-3')
                          for mode in ('fp32', 'bf16', 'bf16+cl')}
    for cell in cells.values():
        assert 'error' not in cell, cell
        assert cell['img_s'] > 0 and cell['loss'] > 0
        assert cell['mfu'] is None  # no peak known for a CPU
    # the one-task model is the stock model's size; three tasks are more
    assert cells['ours-1', 'fp32']['params_m'] == pytest.approx(
        cells['stock', 'fp32']['params_m'])
    assert cells['ours-1', 'fp32']['fwd_gflops'] == pytest.approx(
        cells['stock', 'fp32']['fwd_gflops'], rel=1e-6)
    assert cells['branched-3', 'fp32']['fwd_gflops'] > 1.5 * cells[
        'ours-1', 'fp32']['fwd_gflops']
    rec = result['recombination']
    assert sorted(int(k) for k in rec['step_s']) == [1, 2, 3, 4, 5]
    job_s = sum(100 * s for s in rec['step_s'].values()) / 5 + 20
    assert rec['jobs_per_hour'] == pytest.approx(3600 / job_s)
    assert '| stock | 1 |' in printed and 'jobs per hour' in printed
    assert 'peak assumed' in printed


def test_mfu_uses_the_assumed_peak(gpu):
    """MFU = 3 x 2 x multiply-adds per image x img/s / peak."""
    peak = gpu.peak_for('cpu', dict(fp32=1.0, bf16=None))
    assert peak == dict(fp32=1.0, bf16=None)
    # device names: PCIe before SXM, H200 as H100 SXM
    names = [k for k, _ in gpu.PEAKS]
    assert names.index('H100 PCIe') < names.index('H100')
    assert dict(gpu.PEAKS)['H200'] == dict(gpu.PEAKS)['H100']
    model = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    # 3 x 8 x 9 multiply-adds per pixel, two FLOPs each
    assert gpu.forward_gflops(model, (4, 4), 'cpu') == pytest.approx(
        2 * 3 * 8 * 9 * 16 / 1e9)


def test_overhead_models_compute_the_same_loss():
    """The overhead benchmark's pair: ours carries the stock weights and
    gives the stock loss (it refuses to time models that differ)."""
    bo = _load('benchmark_overhead')
    stock, ours = bo.build_pair('resnet18-narrow-d8', 'cpu')
    stock_data, our_data = bo.make_batch(2, (32, 64))
    assert bo.check_same_loss(stock, ours, stock_data, our_data) == 0.0
    with torch.no_grad():
        # one class's logits only (a shift of all would cancel in softmax)
        ours.head.task_heads['semseg'].conv_seg.weight[0].add_(0.5)
    with pytest.raises(RuntimeError, match='differ'):
        bo.check_same_loss(stock, ours, stock_data, our_data)


def test_time_budget_skips_what_does_not_fit(gpu, capsys):
    """Cells that would overrun --time-budget are reported, not run (the
    command must end in time on the GPU)."""
    result = gpu.main(['--device', 'cpu', '--quick', '--time-budget', '0',
                       '--models', 'stock', 'ours-1'])
    assert len(result['cells']) == 2 * len(gpu.MODES)
    assert all(c.get('skipped') == 'time budget' for c in result['cells'])
    rec = result['recombination']
    assert rec['skipped_splits'] == [1, 2, 3, 4, 5]
    assert 'jobs_per_hour' not in rec
    assert '| time budget |' in capsys.readouterr().out
