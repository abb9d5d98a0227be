"""The main job's progress lines: elapsed time and the estimate of the time
left, per stage."""
import json
import re

import pytest

from branched_mtl.pipeline.stages import Progress, format_duration

LINE = re.compile(r'^\[branch\] stage (\d+) of (\d+): (\S+) \| elapsed '
                  r'(\S+) \| (estimate after the first stage|about (\S+) '
                  r'left)$')


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_format_duration():
    assert format_duration(0) == '0s'
    assert format_duration(42.4) == '42s'
    assert format_duration(59.6) == '1m00s'
    assert format_duration(185) == '3m05s'
    assert format_duration(3725) == '1h02m'
    assert format_duration(-3) == '0s'


def test_lines_elapsed_and_estimate(tmp_path):
    clock, lines = Clock(), []
    stages = [('single_task/a', 'single', 1.0),
              ('single_task/b', 'single', 1.0),
              ('affinity', 'other', 0.05),
              ('branched', 'multi', 2.0),
              ('all_shared', 'multi', 1.5),
              ('report', 'other', 0.5)]
    progress = Progress(stages, lines.append, str(tmp_path), clock=clock)
    durations = [60, 80, 3.5, 300, 200, 35]
    for (name, _, _), seconds in zip(stages, durations):
        progress.start(name)
        clock.now += seconds
    assert progress.finish() == pytest.approx(sum(durations))
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(3) for m in parsed] == [s[0] for s in stages]
    assert [int(m.group(1)) for m in parsed] == list(range(1, 7))
    assert {int(m.group(2)) for m in parsed} == {6}
    # elapsed: the sum of the stages before
    assert [m.group(4) for m in parsed] == [
        '0s', '1m00s', '2m20s', '2m24s', '7m24s', '10m44s']
    # nothing to estimate from before the first stage ended
    assert parsed[0].group(5) == 'estimate after the first stage'
    # after a: 60 s per unit of weight for every kind -> 1 + .05 + 2 +
    # 1.5 + .5 = 5.05 units left = 303 s
    assert parsed[1].group(6) == '5m03s'
    # after a, b: 70 s per unit (single); the multi-task and other stages
    # fall back on the rate of all stages that ran: (140 + 3.5) / 2.05 per
    # unit for 4.05 units
    rate = 143.5 / 2.05
    assert parsed[3].group(6) == format_duration(rate * 4.0)
    # after branched: multi-task models at its own 150 s per unit; others
    # at the rate of the 'other' stages (3.5 s / 0.05 = 70 s per unit)
    assert parsed[4].group(6) == format_duration(150 * 1.5 + 70 * 0.5)
    assert parsed[5].group(6) == format_duration(70 * 0.5)
    times = json.loads((tmp_path / 'stage_times.json').read_text())
    assert times['elapsed'] == pytest.approx(sum(durations))
    assert [round(times['stages'][s[0]]['seconds'], 6) for s in stages] == \
        durations


def test_skipped_stages_do_not_count_and_weights_update():
    clock, lines = Clock(), []
    stages = [('single_task/a', 'single', 1.0),
              ('single_task/b', 'single', 1.0),
              ('branched', 'multi', 2.0)]
    progress = Progress(stages, lines.append, clock=clock)
    progress.start('single_task/a')  # done earlier: a rerun skips it
    progress.skipped()
    clock.now += 0.5
    progress.start('single_task/b')
    # a skipped stage teaches nothing: still no estimate
    assert lines[-1].endswith('| estimate after the first stage')
    clock.now += 100
    progress.set_weights([('single_task/a', 'single', 1.0),
                          ('single_task/b', 'single', 1.0),
                          ('branched', 'multi', 3.0)])
    progress.start('branched')
    # 100 s per unit from b alone (not 100.5 / 2), 3 units left
    assert lines[-1].endswith('| about 5m00s left'), lines[-1]
    with pytest.raises(ValueError, match='other stages'):
        progress.set_weights(stages[:2])


def test_bad_stages():
    with pytest.raises(ValueError, match='repeat'):
        Progress([('a', 'single', 1.0), ('a', 'multi', 1.0)], print)
    with pytest.raises(ValueError, match="stage 'b'"):
        Progress([('b', 'training', 1.0)], print)
    with pytest.raises(ValueError, match="stage 'c'"):
        Progress([('c', 'single', float('nan'))], print)
