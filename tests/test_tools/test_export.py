"""Export of branched networks: ONNX checked with onnxruntime and ``.pt2``
reloaded, both against eager PyTorch and the model's own ``predict``."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import MULTIDIGITS, ROOT
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from branched_mtl.apis.inference import init_model
from branched_mtl.deploy import (TOLERANCE, TaskOutputs, check_export,
                                 compare_outputs, eager_outputs,
                                 example_images, export_model, run_exported)
from branched_mtl.visualization.predictions import task_array

SCENES = osp.join(ROOT, 'configs', 'synthetic_scenes',
                  'resnet18-narrow-d8-psp_all-shared_synthetic-scenes-'
                  '64x128.py')
DIGITS = osp.join(MULTIDIGITS, 'resnet18-thin_branched-example_multidigits.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'export_tool', osp.join(ROOT, 'tools', 'deploy', 'export.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


def _predict(model, images):
    shape = tuple(images.shape[-2:])
    data = dict(inputs=[i.to(torch.uint8) for i in images],
                data_samples=[BaseDataElement(metainfo=dict(
                    img_shape=shape, ori_shape=shape)) for _ in images])
    with torch.no_grad():
        return model.test_step(data)


def _trained_like(model):
    """Weights away from their initial values (BN statistics included),
    so that the check compares more than near-constant outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                noise = torch.randn(value.shape, generator=gen)
                if 'running_var' in name:
                    value.copy_(0.5 + noise.abs())
                else:
                    value.add_(0.05 * noise)
    return model


def test_dense_branched_onnx(tmp_path):
    cfg = Config.fromfile(SCENES)
    tasks = ['semseg', 'normals', 'instance']
    cfg.model.encoder.tasks = tasks
    cfg.model.encoder.branches = [[tasks]] * 4 + [[['semseg'],
                                                   ['normals', 'instance']]]
    heads = cfg.model.head.task_heads
    cfg.model.head.task_heads = {t: heads[t] for t in tasks}
    cfg.model.head.loss_weights = None
    model = _trained_like(init_model(cfg))
    wrapper = TaskOutputs(model).eval()
    path = str(tmp_path / 'scenes.onnx')
    # 60 is no multiple of the preprocessor's divisor 8: padded in the graph
    shape = (64, 120)
    assert export_model(wrapper, example_images(shape, 2), path) == 'onnx'
    import onnx
    graph = onnx.load(path).graph
    assert [o.name for o in graph.output] == tasks
    assert [i.name for i in graph.input] == ['image']
    for batch in (3, 1):  # batch sizes other than the traced one
        images = example_images(shape, batch, seed=batch)
        errors = check_export(path, wrapper, images)
        assert max(errors.values()) <= TOLERANCE['atol']
    # the graph's outputs are what predict stores
    images = example_images(shape, 2, seed=5)
    outputs = run_exported(path, images)
    preds = _predict(model, images)
    for i, pred in enumerate(preds):
        np.testing.assert_allclose(outputs['semseg'][i],
                                   pred.semseg.seg_logits.data.numpy(),
                                   atol=1e-4, rtol=1e-4)
        for task in ('normals', 'instance'):
            _, expected = task_array(pred.get(task))
            np.testing.assert_allclose(outputs[task][i], expected,
                                       atol=1e-4, rtol=1e-4)
    # a wrong output is caught, naming the task
    outputs['normals'] = outputs['normals'] + 1e-2
    with pytest.raises(AssertionError, match="task 'normals'"):
        compare_outputs(outputs, eager_outputs(wrapper, images))


def test_digits_tool_pt2(tmp_path, capsys):
    model = _trained_like(init_model(DIGITS))
    ckpt = str(tmp_path / 'digits.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'sub' / 'digits.pt2')
    report = tool.main([DIGITS, ckpt, '--out', out])
    assert report['format'] == 'pt2' and report['shape'] == [32, 64]
    assert set(report['max_abs_error']) == set(model.tasks)
    printed = capsys.readouterr().out
    assert 'sum (N, 19)' in printed and 'tolerance' in printed
    umask = os.umask(0)
    os.umask(umask)
    # a new file's permissions, not the temp file's private 0600
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    program = torch.export.load(out)
    images = example_images((32, 64), 4, seed=3)
    with torch.no_grad():
        outputs = program.module()(images)
    assert list(outputs) == model.tasks
    for pred, i in zip(_predict(model, images), range(4)):
        for task in model.tasks:
            np.testing.assert_allclose(outputs[task][i].numpy(),
                                       pred.get(task).pred_score.numpy(),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('case', ['suffix', 'checkpoint', 'tree', 'config'])
def test_bad_inputs_one_line(case, tmp_path, capsys):
    ckpt = str(tmp_path / 'digits.pth')
    if case == 'tree':
        torch.save(init_model(DIGITS).state_dict(), ckpt)
    config, out = DIGITS, str(tmp_path / 'm.onnx')
    if case == 'suffix':
        out = str(tmp_path / 'm.tflite')
    if case == 'tree':
        config = osp.join(MULTIDIGITS,
                          'resnet18-thin_all-shared_multidigits.py')
    if case == 'config':
        config = str(tmp_path / 'none.py')
        torch.save(init_model(DIGITS).state_dict(), ckpt)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([config, ckpt, '--out', out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('export: error:')
    expected = dict(suffix="unknown suffix '.tflite'",
                    checkpoint=f'checkpoint {ckpt} does not exist',
                    tree='of another tree: it holds 2 copies of block layer2',
                    config='config file')[case]
    assert expected in err
