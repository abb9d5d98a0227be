import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from branched_mtl.evaluation.task_conflict import (accuracy_gaps,
                                                   gradient_cosines,
                                                   set_width,
                                                   unconverged_tasks)
from branched_mtl.registry import DATASETS, MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'planted_digits',
                  'resnet18-w8_all-shared_planted-digits.py')


def tiny_model_and_batch(width=2):
    cfg = set_width(Config.fromfile(CONFIG), width)
    heads = cfg.model.head.task_heads
    # `twin` is `digit` again with the same head: its gradients must equal
    # digit's on every block
    cfg.model.head.task_heads = dict(digit=heads.digit, twin=heads.digit,
                                     bg_colour=heads.bg_colour)
    cfg.model.encoder.tasks = ['digit', 'twin', 'bg_colour']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    twin = model.head.task_heads['twin']
    twin.load_state_dict(model.head.task_heads['digit'].state_dict())
    ds_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    ds_cfg.update(num_samples=16, image_size=(32, 32),
                  task_specs=dict(ds_cfg.task_specs,
                                  twin=dict(op='class', factor='digit')),
                  tasks=['digit', 'twin', 'bg_colour'], groups=None)
    dataset = DATASETS.build(ds_cfg)
    batch = pseudo_collate([dataset[i] for i in range(16)])
    return cfg, model, batch


def test_set_width_widens_backbone_and_heads():
    cfg = Config.fromfile(CONFIG)
    wide = set_width(cfg, 16)
    assert wide.model.encoder.backbone.base_channels == 16
    assert wide.model.encoder.backbone.stem_channels == 16
    assert {h.in_channels for h in wide.model.head.task_heads.values()} == \
        {128}
    assert cfg.model.encoder.backbone.base_channels == 8  # a copy
    cfg.model.encoder.backbone.depth = 50
    with pytest.raises(ValueError, match='depth 50'):
        set_width(cfg, 4)
    with pytest.raises(ValueError, match='width must be an int'):
        set_width(wide, 0)


def test_gradient_cosines_on_a_shared_encoder():
    _, model, batch = tiny_model_and_batch()
    before = copy.deepcopy(model.state_dict())
    blocks, cos = gradient_cosines(model, batch)
    assert blocks == ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    assert cos.shape == (5, 3, 3)
    assert np.allclose(cos, cos.transpose(0, 2, 1))
    assert np.allclose(cos[:, range(3), range(3)], 1)
    # identical tasks: identical gradients; different tasks: not
    assert np.allclose(cos[:, 0, 1], 1, atol=1e-6)
    assert (np.abs(cos[:, 0, 2]) < 0.99).all()
    # the model, batch-norm statistics included, is left as it was
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gradient_cosines_need_an_all_shared_encoder():
    cfg, _, batch = tiny_model_and_batch()
    cfg.model.encoder.branches = [[['digit', 'twin', 'bg_colour']]] * 4 + [
        [['digit', 'twin'], ['bg_colour']]]
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='all-shared'):
        gradient_cosines(model, batch)


def test_accuracy_gaps_and_convergence():
    gaps = accuracy_gaps(dict(a=[90, 92, 94], b=[50, 60, 70]),
                         dict(a=[80, 81, 82], b=[55, 58, 61]))
    assert gaps['a']['gap'] == pytest.approx(-11)
    assert gaps['a']['single_std'] == pytest.approx(2)
    assert gaps['a']['beyond_spread']  # 11 > 2 + 1
    assert gaps['b']['gap'] == pytest.approx(-2)
    assert not gaps['b']['beyond_spread']  # 2 < 10 + 3
    curves = dict(flat=[(50, 60.0), (80, 70.0), (90, 70.2), (100, 70.1)],
                  rising=[(50, 60.0), (80, 70.0), (90, 71.0), (100, 72.0)])
    assert unconverged_tasks(curves, max_iters=100) == ['rising']
