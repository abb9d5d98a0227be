"""TagHook: TAG's lookahead affinity during a multi-task training run."""
import argparse
import copy
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import MULTIDIGITS, ROOT, slow, tiny_options
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from branched_mtl.affinity import load_affinity
from branched_mtl.affinity.tag import tag_lookahead
from branched_mtl.engine.hooks.tag_hook import (TagHook, lookahead_losses,
                                                task_losses)
from branched_mtl.registry import DATASETS, build_stock

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
TASKS = ['left', 'right', 'left_parity', 'right_parity', 'sum']


def tiny(work_dir, iters=4):
    cfg = Config.fromfile(CFG)
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(
        ['--o'] + tiny_options(str(work_dir), iters=iters,
                               ckpt_interval=iters)).o)
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=3)
    return cfg


def state_of(optimizer):
    return copy.deepcopy(optimizer.state_dict())


def assert_same(a, b, where=''):
    """Bit-identical nested state (tensors compared with torch.equal)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and \
            torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{k}]')
    else:
        assert a == b, where


# ------------------------------------------------------------ the lookahead
class Toy(nn.Module):
    """Two shared 'blocks' w1, w2 and one head parameter per task.

    Tasks a and b have the same loss (w1 + w2 - 1)^2; task c's loss
    depends on its head alone, so it has no gradient on the shared blocks.
    """

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(1))
        self.w2 = nn.Parameter(torch.zeros(1))
        self.hc = nn.Parameter(torch.zeros(1))
        self.register_buffer('calls', torch.zeros(1))

    def losses(self):
        self.calls += 1  # a buffer the forwards change, as batch norm's
        ab = ((self.w1 + self.w2 - 1) ** 2).sum()
        return dict(a=ab, b=ab.clone(), c=((self.hc - 2) ** 2).sum())


def test_known_answers_sgd():
    """Plain SGD, lr 0.1: a step of a (or b) on w1 alone moves w1 to 0.2,
    L = 0.64, Z = 0.36; on w1 and w2 both move to 0.2, L = 0.36, Z = 0.64.
    c reaches no shared parameter: Z[c -> *] = 0 and nothing moves c."""
    toy = Toy()
    opt = torch.optim.SGD(toy.parameters(), lr=0.1)
    before, after = lookahead_losses(
        toy.losses, ['a', 'b', 'c'], [[toy.w1], [toy.w1, toy.w2]], opt, toy)
    np.testing.assert_allclose(before, [1.0, 1.0, 4.0])
    z = 1 - after / before[None, None]
    np.testing.assert_allclose(z[0, :2, :2], 0.36, rtol=1e-6)
    np.testing.assert_allclose(z[1, :2, :2], 0.64, rtol=1e-6)
    # identical tasks: the same affinity both ways
    assert z[1, 0, 1] == z[1, 1, 0] == z[1, 0, 0]
    assert (z[:, 2, :] == 0).all() and (z[:, :, 2] == 0).all()
    # the heads never move in a lookahead: c's own step leaves c as it was
    assert after[1, 2, 2] == before[2]


def test_momentum_moves_without_gradient():
    """With momentum the optimiser's own rule moves the shared blocks even
    for a task without gradient there (TAG's 'optimizer step')."""
    toy = Toy()
    opt = torch.optim.SGD(toy.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # build up a momentum buffer
        opt.zero_grad()
        sum(toy.losses().values()).backward()
        opt.step()
    _, after = lookahead_losses(
        toy.losses, ['a', 'b', 'c'], [[toy.w1, toy.w2]], opt, toy)
    losses = toy.losses()
    z = 1 - after[0] / np.array([float(losses[t].detach()) for t in 'abc'])
    assert z[2, 0] != 0  # c's zero gradient plus the buffer moved a


@pytest.mark.parametrize('make_opt,warm', [
    pytest.param(lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9,
                                           weight_decay=1e-3), 2,
                 marks=slow, id='sgd-momentum'),
    pytest.param(lambda p: torch.optim.AdamW(p, lr=2e-3, weight_decay=1e-4),
                 2, id='adamw'),
    # no state yet: the lookahead creates state that must go again
    pytest.param(lambda p: torch.optim.Adam(p, lr=1e-3), 0, marks=slow,
                 id='adam-fresh'),
])
def test_lookahead_restores_bit_identical(make_opt, warm):
    init_default_scope('branched_mtl')
    cfg = Config.fromfile(CFG)
    model = build_stock(cfg.model)
    model.train()
    opt = make_opt(model.parameters())
    ds = build_stock(dict(type='MultiDigits', split='train', num_samples=8,
                          tasks=TASKS, pipeline=cfg.train_dataloader.dataset
                          .dataset.pipeline), DATASETS)
    data = model.data_preprocessor(pseudo_collate([ds[k] for k in range(8)]),
                                   True)
    x, samples = data['inputs'], data['data_samples']

    def loss_fn():
        return task_losses(model(x, samples, mode='loss'), TASKS)

    for _ in range(warm):  # some optimiser state and gradients to keep
        opt.zero_grad()
        sum(loss_fn().values()).backward()
        opt.step()
    params = copy.deepcopy(model.state_dict())
    grads = {n: None if p.grad is None else p.grad.clone()
             for n, p in model.named_parameters()}
    opt_state = state_of(opt)
    rng = torch.get_rng_state()
    enc = model.encoder
    split = []
    for b in range(enc.num_blocks):
        split.append((split[-1] if split else []) +
                     list(enc.nodes[b].parameters()))
    before, after = lookahead_losses(loss_fn, TASKS, split, opt, model)
    assert np.isfinite(before).all() and np.isfinite(after).all()
    # the step changed the losses (it did something) ...
    assert (after[-1] != before[None]).any()
    # ... and everything is back, bit for bit
    assert_same(model.state_dict(), params, 'model')
    assert_same(state_of(opt), opt_state, 'optimizer')
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None), n
        if grads[n] is not None:
            assert torch.equal(p.grad, grads[n]), n
    assert torch.equal(torch.get_rng_state(), rng)


# ------------------------------------------------------------ in training
def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_training_with_hook_is_identical(tmp_path):
    """Same seed, with and without the hook: bit-identical weights; the
    affinity file loads and tools/build_tree.py builds a tree from it."""
    init_default_scope('branched_mtl')
    plain = _train(tiny(tmp_path / 'plain'))
    cfg = tiny(tmp_path / 'tag')
    cfg.custom_hooks = [dict(type='TagHook', interval=2)]
    hooked = _train(cfg)
    assert set(plain) == set(hooked)
    for k in plain:
        assert torch.equal(plain[k], hooked[k]), k

    path = tmp_path / 'tag' / 'tag' / 'affinity.json'
    doc = load_affinity(path)
    assert doc['method'] == 'tag' and doc['tasks'] == TASKS
    assert doc['blocks'] == ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    assert doc['meta']['measurements'] == 2  # iterations 0 and 2 of 4
    assert doc['meta']['optimizer'] == 'AdamW'
    a = doc['affinity']
    np.testing.assert_allclose(a, a.transpose(0, 2, 1))
    off = ~np.eye(5, dtype=bool)
    # every pair's transfer over the two tasks' own lookahead
    z = tag_lookahead(doc)
    sym = (z + z.transpose(0, 2, 1)) / 2
    own = np.clip(np.diagonal(z, axis1=1, axis2=2), 0, None)
    norm = np.sqrt(own[:, :, None] * own[:, None, :])
    expect = np.where(norm > 0, sym / np.where(norm > 0, norm, 1), 0)
    np.testing.assert_allclose(a[:, off], np.clip(expect, -1, 1)[:, off],
                               atol=1e-12)
    assert (np.asarray(doc['meta']['counts']) == 2).all()

    spec = importlib.util.spec_from_file_location(
        'build_tree_tool', osp.join(ROOT, 'tools', 'build_tree.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'tree.py'
    assert tool.main([str(path), CFG, '--alpha', '0.05', '--out', str(out),
                      '--no-draw']) == 0
    branches = Config.fromfile(str(out)).model.encoder.branches
    assert len(branches) == 5


def test_resume_keeps_the_measurements(tmp_path):
    """The running sums travel in the checkpoint: a resumed run averages
    over every measurement, as an uninterrupted one does."""
    hook = TagHook(interval=3)
    hook.z_sum = np.full((5, 5, 5), 0.5)
    hook.counts = np.full((5, 5, 5), 2)
    hook.measurements, hook.seconds = 2, 1.5
    ckpt = {}
    hook.before_save_checkpoint(None, ckpt)
    other = TagHook(interval=3)
    other.after_load_checkpoint(None, ckpt)
    assert other.measurements == 2 and other.seconds == 1.5
    np.testing.assert_array_equal(other.counts, hook.counts)
    np.testing.assert_array_equal(other.z_sum, hook.z_sum)


def test_hook_refuses_bad_arguments_and_branched_models(tmp_path):
    with pytest.raises(ValueError, match='interval'):
        TagHook(interval=0)
    with pytest.raises(ValueError, match='splits'):
        TagHook(splits='layers')
    init_default_scope('branched_mtl')
    cfg = Config.fromfile(CFG)
    cfg.model.encoder.branches = [[TASKS]] * 4 + [[TASKS[:2], TASKS[2:]]]
    model = build_stock(cfg.model)
    with pytest.raises(ValueError, match='all-shared'):
        TagHook()._encoder(model)
