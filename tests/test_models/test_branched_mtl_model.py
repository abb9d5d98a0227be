import os.path as osp

import pytest
import torch
from mmengine.config import Config

from branched_mtl.registry import MODELS

CFG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'multidigits',
               'resnet18-thin_branched-example_multidigits.py')


def batch(n=8):
    from branched_mtl.datasets import MultiDigits
    from mmpretrain.datasets.transforms import PackMultiTaskInputs
    ds = MultiDigits(split='train', num_samples=n)
    pack = PackMultiTaskInputs(multi_task_fields=('gt_label', ))
    items = [pack(ds[i]) for i in range(n)]
    return dict(inputs=[i['inputs'] for i in items],
                data_samples=[i['data_samples'] for i in items])


def build():
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CFG).model)
    model.init_weights()
    return model


def test_modes():
    model = build()
    data = model.data_preprocessor(batch(), training=False)
    out = model(**data, mode='tensor')
    assert set(out) == set(model.tasks)
    assert out['sum'].shape == (8, 19)
    preds = model(**data, mode='predict')
    assert preds[0].left.pred_score.shape == (10, )
    losses = model(**data, mode='loss')
    assert {f'{t}.loss' for t in model.tasks} <= set(losses)
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(**data, mode='bogus')


def test_training_lowers_every_task_loss():
    model = build()
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3)
    data = model.data_preprocessor(batch(16), training=True)
    model.train()
    first = None
    for _ in range(15):
        losses = model(**data, mode='loss')
        if first is None:
            first = {k: v.item() for k, v in losses.items()}
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    last = {k: v.item() for k, v in model(**data, mode='loss').items()}
    for key in first:
        assert last[key] < first[key], key


def test_encoder_and_head_tasks_must_agree():
    cfg = Config.fromfile(CFG).model
    cfg.head.task_heads.pop('sum')
    with pytest.raises(ValueError, match='differ'):
        MODELS.build(cfg)
