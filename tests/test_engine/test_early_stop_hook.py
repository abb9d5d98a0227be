import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from branched_mtl.engine.hooks.early_stop_hook import (RECORD_FILE,
                                                      ProbeEarlyStoppingHook)


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval must be an integer >= 1'),
    (dict(interval=2.5), 'interval must be an integer >= 1'),
    (dict(patience=0), 'patience must be an integer >= 1'),
    (dict(min_delta=-0.1), r'min_delta is a relative improvement'),
    (dict(min_delta=1.0), r'min_delta is a relative improvement'),
    (dict(dataset='holdout'), 'dataset must be one of'),
    (dict(num_samples=0), 'give num_samples >= 1 or sample_indices'),
])
def test_bad_arguments_name_the_hook_and_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        ProbeEarlyStoppingHook(**kwargs)
    assert str(info.value).startswith('ProbeEarlyStoppingHook:')


def _fake_runner(tmp_path, max_iters):
    model = SimpleNamespace()  # not a wrapper: the hook uses it as is
    return SimpleNamespace(
        iter=0, max_iters=max_iters, model=model, work_dir=str(tmp_path),
        train_loop=SimpleNamespace(stop_training=False),
        logger=SimpleNamespace(info=lambda msg: None))


def _run(hook, runner, losses):
    """Drive the hook's checks with a given sequence of probe losses."""
    hook.best, hook.bad_checks, hook.checks, hook.stopped_at = (
        float('inf'), 0, [], None)
    feed = iter(losses)
    hook.probe_loss = lambda model: next(feed)
    for it in range(runner.max_iters):
        runner.iter = it
        hook.after_train_iter(runner, it)
        if runner.train_loop.stop_training:
            break
    hook.after_train(runner)
    return json.loads((Path(runner.work_dir) / RECORD_FILE).read_text())


def test_stops_after_patience_checks_without_relative_improvement(tmp_path):
    hook = ProbeEarlyStoppingHook(interval=10, patience=2, min_delta=0.1)
    runner = _fake_runner(tmp_path, max_iters=200)
    # 1.0 -> 0.8 improves by 20 %; 0.75 and 0.74 are under 10 % better
    record = _run(hook, runner, [1.0, 0.8, 0.75, 0.74, 0.1, 0.1])
    assert record['stopped_at'] == 40
    assert runner.train_loop.stop_training
    assert [c['iter'] for c in record['checks']] == [10, 20, 30, 40]
    assert record['best'] == pytest.approx(0.8)


def test_runs_the_whole_schedule_while_the_loss_falls(tmp_path):
    hook = ProbeEarlyStoppingHook(interval=10, patience=1)
    runner = _fake_runner(tmp_path, max_iters=50)
    record = _run(hook, runner, [1.0, 0.9, 0.8, 0.7])
    # no check at the last iteration: the run ends there anyway
    assert record['stopped_at'] is None
    assert [c['iter'] for c in record['checks']] == [10, 20, 30, 40]
    assert not runner.train_loop.stop_training
