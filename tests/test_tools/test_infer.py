"""tools/infer.py: images, folders and lists in; per-image folders out; one
error line for bad inputs."""
import importlib.util
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from conftest import MULTIDIGITS, ROOT

from branched_mtl.apis.inference import init_model

DIGITS = osp.join(MULTIDIGITS, 'resnet18-thin_branched-example_multidigits.py')
SHARED = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'infer_tool', osp.join(ROOT, 'tools', 'infer.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ckpt') / 'digits.pth')
    torch.save(dict(state_dict=init_model(DIGITS).state_dict()), path)
    return path


def _image(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    mmcv.imwrite(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), str(path))


def test_folder_list_and_file(checkpoint, tmp_path, capsys):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    _image(tmp_path / 'a' / 'x.png', 40, 90)
    _image(tmp_path / 'a' / 'y.jpg', 32, 64, 1)
    (tmp_path / 'a' / 'notes.txt').write_text('not an image in a folder')
    _image(tmp_path / 'b' / 'x.png', 20, 20, 2)  # same name as a/x.png
    (tmp_path / 'list.txt').write_text('b/x.png\n')
    out = tmp_path / 'out'
    result = tool.main([DIGITS, checkpoint, str(tmp_path / 'a'),
                        str(tmp_path / 'list.txt'), '--out-dir', str(out),
                        '--batch-size', '2'])
    assert len(result['predictions']) == 3
    assert sorted(p.name for p in out.iterdir()) == ['x', 'x_1', 'y']
    summary = json.loads((out / 'x_1' / 'predictions.json').read_text())
    assert summary['image'].endswith(osp.join('b', 'x.png'))
    # resized to the size MultiDigits' model was trained at
    assert summary['input_shape'] == [32, 64]
    assert summary['original_shape'] == [20, 20]
    assert summary['tasks']['sum']['shape'] == [19]
    for task in ('left', 'sum'):
        assert (out / 'y' / f'{task}.png').is_file()
        scores = np.load(out / 'y' / f'{task}.npy')
        assert np.isclose(scores.sum(), 1.0, atol=1e-5)
    assert (out / 'x' / 'tasks.png').is_file()
    assert '3 image(s)' in capsys.readouterr().out


def test_native_size(checkpoint, tmp_path):
    _image(tmp_path / 'big.png', 48, 96)
    tool.main([DIGITS, checkpoint, str(tmp_path / 'big.png'), '--out-dir',
               str(tmp_path / 'out'), '--native-size'])
    summary = json.loads(
        (tmp_path / 'out' / 'big' / 'predictions.json').read_text())
    assert summary['input_shape'] == [48, 96]


@pytest.mark.parametrize('case', ['unreadable', 'missing', 'tree',
                                  'checkpoint'])
def test_bad_inputs_one_line(case, checkpoint, tmp_path, capsys):
    image = tmp_path / 'img.png'
    _image(image, 32, 64)
    config, ckpt = DIGITS, checkpoint
    if case == 'unreadable':
        image.write_bytes(b'\x89PNG but cut short')
    if case == 'missing':
        image = tmp_path / 'gone.png'
    if case == 'tree':
        config = SHARED
    if case == 'checkpoint':
        ckpt = str(tmp_path / 'none.pth')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([config, ckpt, str(image), '--out-dir',
                   str(tmp_path / 'out')])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('infer: error:')
    expected = dict(unreadable=f'image {image} cannot be read',
                    missing=f'input {image} does not exist',
                    tree=f'checkpoint {ckpt} is of another tree',
                    checkpoint=f'checkpoint {ckpt} does not exist')[case]
    assert expected in err
    assert not (tmp_path / 'out' / 'img').exists()
