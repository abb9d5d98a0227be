import json
import os

import numpy as np
import pytest

from branched_mtl.affinity import load_affinity, save_affinity

TASKS = ['semseg', 'depth', 'normals']
LAYERS = ['layer1', 'layer4']


def make_affinity():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 3))
    return (a + a.transpose(0, 2, 1)) / 2


def test_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'affinity.json'
    affinity = make_affinity()
    meta = {'num_samples': np.int64(8), 'sample_indices': np.arange(3),
            'runs': [str(tmp_path)]}
    save_affinity(path, TASKS, LAYERS, 'rsa', affinity, meta)
    doc = load_affinity(path)
    assert doc['tasks'] == TASKS and doc['blocks'] == LAYERS
    assert doc['method'] == 'rsa'
    assert doc['meta']['num_samples'] == 8
    assert doc['meta']['sample_indices'] == [0, 1, 2]
    np.testing.assert_array_equal(doc['affinity'], affinity)
    # affinity[l][i][j] is stored as nested lists in task order
    raw = json.loads(path.read_text())
    assert raw['affinity'][1][0][2] == affinity[1, 0, 2]
    # written through a temporary file that is gone afterwards
    assert os.listdir(path.parent) == ['affinity.json']


def test_save_rejects_bad_input_and_leaves_no_file(tmp_path):
    path = tmp_path / 'affinity.json'
    with pytest.raises(ValueError, match=r'shape \(2, 3, 3\), expected .* '
                       r'\(3, 3, 3\)'):
        save_affinity(path, TASKS, LAYERS + ['layer5'], 'rsa',
                      make_affinity(), {})
    with pytest.raises(TypeError, match='not JSON serialisable'):
        save_affinity(path, TASKS, LAYERS, 'rsa', make_affinity(),
                      {'x': object()})
    assert os.listdir(tmp_path) == []


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / 'affinity.json'
    save_affinity(path, TASKS, LAYERS, 'rsa', make_affinity(), {})
    save_affinity(path, TASKS, LAYERS, 'tournament', np.zeros((2, 3, 3)),
                  {})
    assert load_affinity(path)['method'] == 'tournament'


def good_doc():
    return {'tasks': TASKS, 'blocks': LAYERS, 'method': 'tournament',
            'affinity': make_affinity().tolist(), 'meta': {}}


def edit(doc, key, value):
    doc = dict(doc)
    if value is KeyError:
        del doc[key]
    else:
        doc[key] = value
    return doc


NAN_AFFINITY = make_affinity()
NAN_AFFINITY[1, 2, 0] = np.nan


@pytest.mark.parametrize('doc, match', [
    (edit(good_doc(), 'meta', KeyError), r"missing key\(s\) \['meta'\]"),
    (edit(good_doc(), 'tasks', ['a', 'b', 'a']), r"duplicated: \['a'\]"),
    (edit(good_doc(), 'blocks', []), 'blocks'),
    (edit(good_doc(), 'method', 'no such-method'),
     'method must be the name of an affinity method'),
    (edit(good_doc(), 'affinity', make_affinity()[:, :2].tolist()),
     r'shape \(2, 2, 3\)'),
    (edit(good_doc(), 'affinity', [[[1.0]]]), r'shape \(1, 1, 1\)'),
    (edit(good_doc(), 'affinity', NAN_AFFINITY.tolist()),
     r"non-finite affinity nan at block 'layer4', tasks 'normals' / "
     "'semseg'"),
    (edit(good_doc(), 'meta', []), 'meta must be a dict'),
    ([1, 2], 'expected a JSON object'),
])
def test_load_rejects_invalid_files(tmp_path, doc, match):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match) as info:
        load_affinity(path)
    assert str(path) in str(info.value)


def test_load_rejects_invalid_json(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text('{"tasks": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        load_affinity(path)


def test_files_written_before_the_blocks_key_still_load(tmp_path):
    """The key was ``layers`` before the model's name ``blocks`` was used
    everywhere: such files load, as ``blocks``."""
    doc = good_doc()
    doc['layers'] = doc.pop('blocks')
    path = tmp_path / 'old.json'
    path.write_text(json.dumps(doc))
    loaded = load_affinity(str(path))
    assert loaded['blocks'] == LAYERS and 'layers' not in loaded
    # what is written now names them blocks
    save_affinity(str(tmp_path / 'new.json'), TASKS, LAYERS, 'rsa',
                  loaded['affinity'].clip(-1, 1), {})
    assert 'blocks' in json.loads((tmp_path / 'new.json').read_text())
