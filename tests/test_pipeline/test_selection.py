"""One model-selection rule: best probe score, the same for every model."""
import json
import os

import pytest
from mmengine.config import Config

from branched_mtl.pipeline.selection import (best_checkpoint,
                                             read_probe_curve, set_selection,
                                             still_improving)


def _cfg(**train_cfg):
    return Config(dict(
        train_cfg=dict(dict(max_iters=100, val_interval=10), **train_cfg),
        val_evaluator=dict(type='branched_mtl.MultiTaskMetric',
                           task_metrics=dict(a={}, b={})),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=100))))


def test_set_selection_single_and_multi_task():
    cfg = set_selection(_cfg())
    assert cfg.default_hooks.checkpoint.save_best == 'score'
    assert cfg.default_hooks.checkpoint.rule == 'greater'
    assert 'reference' not in cfg.val_evaluator
    cfg = set_selection(_cfg(), reference=dict(a=90, b=0.5),
                        primary=dict(a='accuracy/top1', b='rmse'))
    assert cfg.val_evaluator.reference == dict(a=90.0, b=0.5)
    assert cfg.val_evaluator.primary == dict(a='accuracy/top1', b='rmse')


@pytest.mark.parametrize('train_cfg', [
    dict(val_interval=200), dict(val_begin=101), dict(max_iters=None)])
def test_set_selection_needs_validation(train_cfg):
    with pytest.raises(ValueError, match='validates'):
        set_selection(_cfg(**train_cfg))


def test_set_selection_needs_multi_task_metric():
    cfg = _cfg()
    cfg.val_evaluator = dict(type='mmpretrain.Accuracy')
    with pytest.raises(ValueError, match='MultiTaskMetric'):
        set_selection(cfg)


def _write_curve(work_dir, timestamp, records):
    vis = work_dir / timestamp / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')
        f.write('{"cut by a ki')  # a kill mid-line


def test_read_probe_curve_merges_resumed_runs(tmp_path):
    _write_curve(tmp_path, '20260101_000000', [
        dict(loss=1.0, step=5), dict(score=10.0, step=10),
        dict(score=20.0, step=20)])
    # resumed: step 20 validated again, then 30
    _write_curve(tmp_path, '20260101_010000', [
        dict(score=21.0, step=20), dict(score=25.0, step=30)])
    curve = read_probe_curve(str(tmp_path))
    assert [(r['step'], r['score']) for r in curve] == [
        (10, 10.0), (20, 21.0), (30, 25.0)]


def test_best_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='no best checkpoint'):
        best_checkpoint(str(tmp_path))
    for step in (30, 120):
        (tmp_path / f'best_score_iter_{step}.pth').write_bytes(b'x')
    (tmp_path / 'iter_200.pth').write_bytes(b'x')
    assert best_checkpoint(str(tmp_path)) == os.path.join(
        str(tmp_path), 'best_score_iter_120.pth')


def test_still_improving():
    flat = [dict(step=s, score=90.0 + min(s, 50) / 10) for s in
            range(10, 101, 10)]
    assert not still_improving(flat, 100)
    rising = [dict(step=s, score=float(s)) for s in range(10, 101, 10)]
    assert still_improving(rising, 100)
    # a rise within the tolerance is noise
    tiny = flat[:-1] + [dict(step=100, score=95.0 * 1.004)]
    assert not still_improving(tiny, 100)
    # lower-is-better metrics are negated scores: the rule is the same
    falling_err = [dict(step=s, score=-100.0 + s / 2) for s in
                   range(10, 101, 10)]
    assert still_improving(falling_err, 100)
    assert not still_improving([], 100)
    # Δm scores (multi-task models) are already relative: half a point
    small_dm = [dict(step=80, score=0.24), dict(step=100, score=0.30)]
    assert still_improving(small_dm, 100) is True  # relative: 25 %
    assert not still_improving(small_dm, 100, delta_m=True)
    big_dm = [dict(step=80, score=0.24), dict(step=100, score=1.0)]
    assert still_improving(big_dm, 100, delta_m=True)


def test_report_warns_about_models_still_improving():
    from types import SimpleNamespace

    from branched_mtl.pipeline.report import convergence_lines
    job = SimpleNamespace(results={
        'single_task/a': dict(curve=[[100, 50.0], [200, 90.0]]),
        'single_task/b': dict(curve=[[100, 97.0], [200, 97.0]]),
        'branched': dict(curve=[[100, 0.2], [200, 0.3]]),
        'affinity': dict(path='x')})
    lines = convergence_lines(job)
    assert len(lines) == 3
    # +0.1 point of Δm is no sign of an unconverged multi-task model
    assert 'WARNING' not in lines[2] and '(Δm, %)' in lines[2]
    assert 'single_task/a' in lines[0] and 'WARNING' in lines[0]
    assert 'best probe score 90.00 at iteration 200' in lines[0]
    assert 'WARNING' not in lines[1]
    assert 'at iteration 100 of 200' in lines[1]  # the first best counts
