"""Rows of two comparisons paired seed by seed (compare_pairs and
tools/analysis/pair_comparisons.py)."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

from branched_mtl.evaluation.paired_stats import paired_difference
from branched_mtl.pipeline.compare_pairs import (comparison_rows, pair_rows,
                                                 pairs_markdown)
from branched_mtl.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEEDS = [0, 1, 2, 3, 4]
SINGLE = {'digit/accuracy/top1': [90.0, 91.0, 89.5, 90.5, 92.0],
          'params': [1e6] * 5, 'images_per_s': [100.0] * 5}


def row(label, delta_m, seeds=SEEDS, **values):
    return dict(label=label, seeds=list(seeds),
                values=dict({k: list(v) for k, v in values.items()},
                            delta_m=list(delta_m)))


def doc(*rows, budget='20%'):
    return dict(budget=budget, rows=[row('single-task', [0] * 5,
                                         **SINGLE), *rows])


def test_pairs_by_seed_and_agrees_with_paired_difference():
    a = comparison_rows(doc(row('tournament tree', [1, 2, 3, 4, 5])))
    # a sweep file: the budget picks its rows; one seed missing in B
    b_doc = dict(by_budget={'20%': doc(row('RSA tree', [0, 0, 1, 1],
                                            seeds=[0, 1, 2, 4]))})
    b = comparison_rows(b_doc, '20%')
    [res] = pair_rows(a, b, [('tournament tree', 'RSA tree')])
    assert res['seeds'] == [0, 1, 2, 4]
    assert res['per_seed'] == [1, 2, 2, 4]
    want = paired_difference({0: 1, 1: 2, 2: 3, 4: 5}, {0: 0, 1: 0, 2: 1,
                                                       4: 1})
    assert res['mean'] == pytest.approx(want['mean'])
    assert (res['low'], res['high']) == (want['low'], want['high'])
    assert res['mean'] == pytest.approx(np.mean([1, 2, 2, 4]))
    assert res['low'] < res['mean'] < res['high']
    text = pairs_markdown([res])
    assert '| tournament tree | RSA tree | +2.25 [' in text
    assert '0, 1, 2, 4 |' in text


def test_other_references_or_rows_are_refused():
    a = comparison_rows(doc(row('tournament tree', [1] * 5)))
    other = doc(row('RSA tree', [0] * 5))
    other['rows'][0]['values']['digit/accuracy/top1'][3] = 80.0
    with pytest.raises(UserError, match=r'other single-task models: seed 3'):
        pair_rows(a, comparison_rows(other), [('tournament tree',
                                               'RSA tree')])
    b = comparison_rows(doc(row('RSA tree', [0] * 5)))
    with pytest.raises(UserError, match="B has no row 'TAG tree'"):
        pair_rows(a, b, [('tournament tree', 'TAG tree')])
    with pytest.raises(UserError, match=r"budget sweep: give one of its "
                       r"budgets \['20%'\]"):
        comparison_rows(dict(by_budget={'20%': doc()}), '30%')
    with pytest.raises(UserError, match="at budget '20%', not '50%'"):
        comparison_rows(doc(), '50%')


def test_tool_writes_the_pairs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'pair_comparisons', osp.join(ROOT, 'tools', 'analysis',
                                     'pair_comparisons.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    pa, pb = tmp_path / 'a.json', tmp_path / 'b.json'
    pa.write_text(json.dumps(doc(row('LTB', [-2, -1, -3, -2, -2]))))
    pb.write_text(json.dumps(doc(row('RSA tree', [2, 3, 2, 2, 3]))))
    out = tmp_path / 'pairs.json'
    assert tool.main([str(pa), str(pb), '--pair', 'LTB', 'RSA tree',
                      '--out', str(out)]) == 0
    assert '(B better)' in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved['pairs'][0]['beyond_interval'] == -1
    assert saved['pairs'][0]['mean'] == pytest.approx(-4.4)
    assert tool.main([str(pa), str(tmp_path / 'none.json'), '--pair', 'LTB',
                      'RSA tree']) == 2
    assert 'comparison file not found' in capsys.readouterr().err
