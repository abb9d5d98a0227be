"""The batched (vmap) sibling path equals the sequential one: outputs,
gradients and batch-norm running statistics."""
import copy

import pytest
import torch
import torch.nn as nn

from branched_mtl.models import BranchedEncoder
from branched_mtl.models.encoders.sibling_batching import (batched_siblings,
                                                           batching_obstacle)

TASKS = ['a', 'b', 'c', 'd']
RESNET = dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
              stem_channels=8, out_indices=(2, 3))
VGG = dict(type='mmpretrain.VGG', depth=11, num_classes=-1,
           norm_cfg=dict(type='BN'), out_indices=(4, ))
# siblings from one parent (block 1: two groups under the shared stem) and
# from different parents (block 3: [a] [b] under [a b], [c d] under [c d])
RESNET_TREE = [[TASKS], [['a', 'b'], ['c', 'd']], [['a', 'b'], ['c', 'd']],
               [['a'], ['b'], ['c', 'd']], [['a'], ['b'], ['c'], ['d']]]


def vgg_tree(num_blocks):
    tree = [[TASKS]] * 3 + [[['a', 'b', 'c'], ['d']]] * 2
    return tree + [[['a'], ['b', 'c'], ['d']]] * (num_blocks - 5)


def distinct_weights(encoder, seed=0):
    """Different weights and running statistics in every copy, so that a
    mix-up between copies shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in encoder.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
        for m in encoder.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape,
                                                 generator=g) * 0.1)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def pair(backbone, branches, granularity='stage', frozen_blocks=0):
    seq = BranchedEncoder(backbone, TASKS, branches=branches,
                          granularity=granularity,
                          frozen_blocks=frozen_blocks).double()
    distinct_weights(seq)
    bat = copy.deepcopy(seq)
    bat.sibling_batching = 'vmap'
    return seq, bat


def step(encoder, x, weights):
    """One forward + backward; returns outputs and the input's gradient."""
    x = x.clone().requires_grad_(True)
    out = encoder(x)
    loss = sum((w * f).sum() for t in TASKS
               for w, f in zip(weights[t], out[t]))
    loss.backward()
    return out, x.grad


def assert_same(seq, bat, x, atol=1e-8, rtol=1e-9):
    """float64: equal up to summation order (grouped vs single convolutions
    add in another order); a mix-up of copies or statistics is O(1).
    atol 1e-8: a weight gradient sums over the batch and pixels, and in
    another order its small elements moved by up to 4e-10 in one of a few
    runs (1e-10 made the test flaky)."""
    g = torch.Generator().manual_seed(1)
    out0 = seq(x)
    # a fixed random linear loss, so every output element gets its own
    # gradient (a plain sum would hide a permutation inside a copy)
    weights = {t: [torch.randn(f.shape, generator=g, dtype=f.dtype)
                   for f in out0[t]] for t in TASKS}
    seq.zero_grad(), bat.zero_grad()
    state0 = copy.deepcopy(seq.state_dict())
    bat.load_state_dict(state0)
    out_s, gx_s = step(seq, x, weights)
    out_b, gx_b = step(bat, x, weights)
    for t in TASKS:
        for s, b in zip(out_s[t], out_b[t]):
            torch.testing.assert_close(b, s, rtol=rtol, atol=atol)
    torch.testing.assert_close(gx_b, gx_s, rtol=rtol, atol=atol)
    params_b = dict(bat.named_parameters())
    checked = 0
    for name, p in seq.named_parameters():
        if p.grad is None:
            assert params_b[name].grad is None, name
            continue
        torch.testing.assert_close(params_b[name].grad, p.grad, rtol=rtol,
                                   atol=atol, msg=lambda m: f'{name}: {m}')
        checked += 1
    assert checked > 0
    # running statistics (and num_batches_tracked) after the step
    state_b = bat.state_dict()
    changed = 0
    for name, v in seq.state_dict().items():
        torch.testing.assert_close(state_b[name], v, rtol=rtol, atol=atol,
                                   msg=lambda m: f'{name}: {m}')
        changed += int(not torch.equal(v, state0[name]))
    return changed


@pytest.mark.parametrize('backbone, branches, granularity', [
    (RESNET, RESNET_TREE, 'stage'),
    (VGG, 'vgg', 'layer'),
])
def test_vmap_equals_sequential_train_and_eval(backbone, branches,
                                                granularity):
    if branches == 'vgg':
        branches = vgg_tree(len(BranchedEncoder(
            backbone, TASKS, granularity=granularity).block_names))
    seq, bat = pair(backbone, branches, granularity)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    seq.train(), bat.train()
    changed = assert_same(seq, bat, x)
    # train mode moved the running statistics of every copy
    assert changed > 0
    seq.eval(), bat.eval()
    assert assert_same(seq, bat, x) == 0


def test_vmap_equals_sequential_frozen_bottom():
    # a recombined network: frozen bottom in eval mode, no gradients there
    seq, bat = pair(RESNET, RESNET_TREE, frozen_blocks=2)
    seq.train(), bat.train()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert_same(seq, bat, x)
    assert all(p.grad is None for p in bat.nodes[1].parameters())


def test_batched_siblings_keeps_copy_order():
    blocks = [nn.Linear(4, 3) for _ in range(3)]
    xs = [torch.randn(5, 4) for _ in range(3)]
    out = batched_siblings(blocks, xs)
    for b, x, o in zip(blocks, xs, out):
        torch.testing.assert_close(o, b(x))
    shared = batched_siblings(blocks, [xs[0]] * 3)
    for b, o in zip(blocks, shared):
        torch.testing.assert_close(o, b(xs[0]))


def test_batching_obstacles():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert batching_obstacle([conv, copy.deepcopy(conv)]) is None
    assert batching_obstacle([conv]) is not None
    other = copy.deepcopy(conv)
    other[1].eval()
    assert 'modes' in batching_obstacle([conv, other])
    sync = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4))
    assert batching_obstacle([sync, copy.deepcopy(sync)]) == 'SyncBatchNorm'
    cumulative = nn.Sequential(nn.BatchNorm2d(4, momentum=None))
    assert 'momentum' in batching_obstacle(
        [cumulative, copy.deepcopy(cumulative)])


def test_blocks_with_obstacles_run_sequentially():
    # an encoder whose copies cannot be batched still gives the sequential
    # result under sibling_batching='vmap'
    seq, bat = pair(RESNET, RESNET_TREE)
    for enc in (seq, bat):
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
    seq.train(), bat.train()
    assert not any(bat._batch_block(b) for b in range(bat.num_blocks))
    assert_same(seq, bat, torch.randn(2, 3, 32, 32, dtype=torch.float64))


def test_bad_mode():
    with pytest.raises(ValueError, match='sibling_batching'):
        BranchedEncoder(RESNET, TASKS, sibling_batching='grouped')


def test_copies_with_dropout_draw_their_own_masks():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.5))
    copies = [block, copy.deepcopy(block)]
    x = torch.randn(4, 8)
    # training: vmap must allow random ops (its default refuses them)
    out = batched_siblings(copies, [x, x])
    zeros = [o == 0 for o in out]
    assert all(z.any() for z in zeros)
    # the same weights, other masks: each copy drew its own
    assert not torch.equal(zeros[0], zeros[1])
    for c in copies:
        c.eval()
    out = batched_siblings(copies, [x, x])
    torch.testing.assert_close(out[0], out[1])
