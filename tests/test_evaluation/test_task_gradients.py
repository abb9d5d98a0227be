import os.path as osp

import pytest
import torch
from mmengine.config import Config

from branched_mtl.evaluation.task_gradients import (balanced_loss_weights,
                                                    cross_group_cosines,
                                                    task_gradients)
from branched_mtl.registry import MODELS

CFG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'multidigits',
               'resnet18-thin_all-shared_multidigits.py')


def _batch(n=8):
    from mmpretrain.datasets.transforms import PackMultiTaskInputs

    from branched_mtl.datasets import MultiDigits
    ds = MultiDigits(split='train', num_samples=n)
    pack = PackMultiTaskInputs(multi_task_fields=('gt_label', ))
    items = [pack(ds[i]) for i in range(n)]
    return dict(inputs=[i['inputs'] for i in items],
                data_samples=[i['data_samples'] for i in items])


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = MODELS.build(Config.fromfile(CFG).model)
    m.init_weights()
    return m


def test_weights_equalise_the_gradient_norms(model):
    batches = [_batch()]
    base = task_gradients(model, batches)
    assert base['tasks'] == model.tasks
    assert base['blocks'] == model.encoder.block_names
    assert sum(base['share'].values()) == pytest.approx(1.0)
    # the measurement ignores the config's loss weights (it sets them)
    model.head.loss_weights['sum'] = 50.0
    try:
        again = task_gradients(model, batches)
    finally:
        model.head.loss_weights['sum'] = 1.0
    assert again['norm'] == pytest.approx(base['norm'])
    weights = balanced_loss_weights(base['norm'])
    assert sum(weights.values()) / len(weights) == pytest.approx(1.0)
    # weighted, every task's gradient on the shared encoder has one norm
    scaled = {t: weights[t] * base['norm'][t] for t in weights}
    assert max(scaled.values()) == pytest.approx(min(scaled.values()))
    # a task's own gradient has cosine 1 with itself on every block
    for block in base['blocks'] + ['all']:
        for t in base['tasks']:
            assert base['cosine'][block][t][t] == pytest.approx(1.0, abs=1e-5)
            for u in base['tasks']:
                assert base['cosine'][block][t][u] == pytest.approx(
                    base['cosine'][block][u][t], abs=1e-6)


def test_rule_on_known_norms():
    w = balanced_loss_weights(dict(a=1.0, b=4.0))
    # 1/1 and 1/4, mean 1
    assert w == pytest.approx(dict(a=1.6, b=0.4))
    with pytest.raises(ValueError, match="'b'"):
        balanced_loss_weights(dict(a=1.0, b=0.0))


def test_within_and_across_groups():
    cos = dict(a=dict(a=1, b=0.8, c=-0.2), b=dict(a=0.8, b=1, c=0.0),
               c=dict(a=-0.2, b=0.0, c=1))
    out = cross_group_cosines(cos, [['a', 'b'], ['c']])
    assert out['within'] == pytest.approx(0.8)
    assert out['across'] == pytest.approx(-0.1)


def test_tool_writes_weights_from_probe_batches(tmp_path):
    import importlib.util
    import json
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis',
                    'task_gradients.py')
    spec = importlib.util.spec_from_file_location('task_gradients_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'g.json'
    assert tool.main([CFG, '--out', str(out), '--batches', '1',
                      '--cfg-options', 'val_dataloader.batch_size=4']) == 0
    doc = json.loads(out.read_text())
    assert set(doc['loss_weights']) == set(doc['tasks'])
    assert doc['batches'] == 1
    assert tool.main([CFG, '--out', str(out), '--batches', '0']) == 2


def test_tool_averages_the_norms_over_checkpoints(tmp_path, model):
    import importlib.util
    import json
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis',
                    'task_gradients.py')
    spec = importlib.util.spec_from_file_location('task_gradients_tool2',
                                                  path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    ckpt = tmp_path / 'm.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    opts = ['--batches', '1', '--cfg-options', 'val_dataloader.batch_size=4']
    one, two = tmp_path / 'one.json', tmp_path / 'two.json'
    assert tool.main([CFG, '--out', str(one), '--checkpoints', str(ckpt)]
                     + opts) == 0
    assert tool.main([CFG, '--out', str(two), '--checkpoints', 'none-init',
                      str(ckpt)] + opts) == 2  # a missing file: one line
    assert tool.main([CFG, '--out', str(two), '--checkpoints', str(ckpt),
                      str(ckpt)] + opts) == 0
    a, b = (json.loads(p.read_text()) for p in (one, two))
    assert len(b['per_checkpoint']) == 2
    assert b['norm'] == pytest.approx(a['norm'])
