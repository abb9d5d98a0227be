import copy
import random

import pytest
import torch

from branched_mtl.models import BranchedEncoder, describe_blocks, split_backbone
from branched_mtl.registry import build_stock
from branched_mtl.tree import all_shared, fully_separate, validate_branches

TASKS = ['a', 'b', 'c']
RESNET = dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
              stem_channels=8, out_indices=(2, 3))
VGG = dict(type='mmpretrain.VGG', depth=11, num_classes=-1,
           norm_cfg=dict(type='BN'),
           out_indices=(4, ))
DILATED = dict(type='mmseg.ResNetV1c', depth=18, base_channels=8,
               stem_channels=8, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
               out_indices=(0, 1, 2, 3))


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def stock_with_weights_of(encoder, task):
    """A stock backbone carrying the weights ``task`` uses in ``encoder``."""
    stock = build_stock(encoder.backbone_cfg)
    for b, block in enumerate(split_backbone(stock, encoder.granularity)):
        g = next(i for i, grp in enumerate(encoder.branches[b]) if task in grp)
        block.module.load_state_dict(encoder.nodes[b][g].state_dict())
    stock.eval()  # mmpretrain's train() returns None, so no chaining
    return stock


@pytest.mark.parametrize('backbone, granularity', [
    (RESNET, 'stage'), (VGG, 'stage'), (VGG, 'layer'), (DILATED, 'stage')])
def test_all_shared_equals_stock(backbone, granularity):
    enc = BranchedEncoder(backbone, TASKS, granularity=granularity)
    stock = build_stock(backbone)
    assert n_params(enc) == n_params(stock)
    randomise(stock, 0)
    enc_state = stock_with_weights_of(enc, 'a')  # structure check only
    assert n_params(enc_state) == n_params(stock)
    # copy the stock weights block by block, then compare outputs
    for b, block in enumerate(split_backbone(stock, granularity)):
        enc.nodes[b][0].load_state_dict(block.module.state_dict())
    enc.eval(), stock.eval()
    x = torch.randn(2, 3, 32, 32)
    out, ref = enc(x), stock(x)
    for t in TASKS:
        assert len(out[t]) == len(ref)
        for o, r in zip(out[t], ref):
            torch.testing.assert_close(o, r)


def test_fully_separate_is_n_stock_backbones():
    enc = BranchedEncoder(RESNET, TASKS, fully_separate(TASKS, 5))
    stock = build_stock(RESNET)
    assert n_params(enc) == len(TASKS) * n_params(stock)
    for i, node in enumerate(p for level in enc.nodes for p in level):
        randomise(node, i)
    enc.eval()
    x = torch.randn(2, 3, 32, 32)
    out = enc(x)
    for t in TASKS:
        ref = stock_with_weights_of(enc, t)(x)
        for o, r in zip(out[t], ref):
            torch.testing.assert_close(o, r)
    # distinct weights per task give distinct features
    assert not torch.allclose(out['a'][-1], out['b'][-1])


def test_branched_features_follow_the_tree():
    branches = [[TASKS]] * 3 + [[['a', 'b'], ['c']], [['a'], ['b'], ['c']]]
    enc = BranchedEncoder(RESNET, TASKS, branches)
    for i, node in enumerate(p for level in enc.nodes for p in level):
        randomise(node, i)
    enc.eval()
    x = torch.randn(2, 3, 32, 32)
    out = enc(x)
    # layer3 (out index 0) is shared by a and b, not by c
    torch.testing.assert_close(out['a'][0], out['b'][0])
    assert not torch.allclose(out['a'][0], out['c'][0])
    for t in TASKS:
        ref = stock_with_weights_of(enc, t)(x)
        for o, r in zip(out[t], ref):
            torch.testing.assert_close(o, r)


def test_each_node_runs_once():
    branches = [[TASKS]] * 3 + [[['a', 'b'], ['c']], [['a'], ['b'], ['c']]]
    enc = BranchedEncoder(RESNET, TASKS, branches)
    calls = []
    for b, level in enumerate(enc.nodes):
        for g, node in enumerate(level):
            node.register_forward_hook(
                lambda m, i, o, key=(b, g): calls.append(key))
    enc(torch.randn(2, 3, 32, 32))
    assert sorted(calls) == sorted(
        (b, g) for b, p in enumerate(enc.branches) for g in range(len(p)))


def test_count_without_building_equals_built():
    rng = random.Random(0)
    blocks = describe_blocks(RESNET)
    for _ in range(4):
        # random nested tree: split one more group at some depth
        branches = all_shared(TASKS, 5)
        split_at = rng.randrange(5)
        for b in range(split_at, 5):
            branches[b] = [['a'], ['b', 'c']] if b < 4 else [['a'], ['b'],
                                                            ['c']]
        branches = validate_branches(branches, TASKS, 5)
        enc = BranchedEncoder(RESNET, TASKS, branches)
        assert enc.tree_params() == n_params(enc)
        assert sum(len(p) * blk.num_params
                   for p, blk in zip(branches, blocks)) == n_params(enc)


def test_block_metadata():
    enc = BranchedEncoder(RESNET, TASKS)
    assert enc.block_names == ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    # stem: stride-2 conv + max pool; layer2-4 stride 2
    assert enc.pools == [5, 3, 3, 2, 1]
    dil = BranchedEncoder(DILATED, TASKS)
    # dilated: layer3/layer4 keep the resolution (p_l from resolutions)
    assert dil.pools == [3, 1, 1, 0, 0]
    vgg = BranchedEncoder(VGG, TASKS, granularity='layer')
    assert len(vgg.block_names) == 8 and vgg.block_names[0] == 'stage0.conv0'
    assert vgg.pools[0] == 5 and vgg.pools[-1] == 1
    assert [b.num_params for b in describe_blocks(RESNET)] == enc.block_params


def test_init_weights_same_for_all_copies(tmp_path):
    enc = BranchedEncoder(RESNET, TASKS, fully_separate(TASKS, 5))
    enc.init_weights()
    for level in enc.nodes:
        ref = level[0].state_dict()
        for node in level[1:]:
            for k, v in node.state_dict().items():
                torch.testing.assert_close(v, ref[k])
    # from a checkpoint of the stock backbone
    stock = build_stock(RESNET)
    randomise(stock, 3)
    path = tmp_path / 'stock.pth'
    torch.save(stock.state_dict(), path)
    cfg = dict(RESNET, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    enc = BranchedEncoder(cfg, TASKS, fully_separate(TASKS, 5))
    enc.init_weights()
    enc.eval(), stock.eval()
    x = torch.randn(1, 3, 32, 32)
    for t in TASKS:
        torch.testing.assert_close(enc(x)[t][-1], stock(x)[-1])


def test_missing_checkpoint_is_named(tmp_path):
    cfg = dict(RESNET, init_cfg=dict(type='Pretrained',
                                     checkpoint=str(tmp_path / 'nope.pth')))
    enc = BranchedEncoder(cfg, TASKS)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        enc.init_weights()


def test_frozen_blocks():
    enc = BranchedEncoder(RESNET, TASKS, frozen_blocks=2)
    enc.train()
    for b, level in enumerate(enc.nodes):
        for node in level:
            frozen = b < 2
            assert all(p.requires_grad != frozen for p in node.parameters())
            bns = [m for m in node.modules()
                   if isinstance(m, torch.nn.BatchNorm2d)]
            assert bns and all(m.training != frozen for m in bns)


def test_bad_configs():
    with pytest.raises(ValueError, match=r"block 3: task\(s\) 'c' in no group"):
        BranchedEncoder(RESNET, TASKS, [[TASKS]] * 3 + [[['a'], ['b']]] +
                        [[['a'], ['b'], ['c']]])
    with pytest.raises(ValueError, match='frozen_stages'):
        BranchedEncoder(dict(RESNET, frozen_stages=1), TASKS)
    with pytest.raises(ValueError, match='num_classes=-1'):
        BranchedEncoder(dict(VGG, num_classes=10), TASKS)
    with pytest.raises(TypeError, match='no block splitter for backbone '
                       r'mmpretrain\..*LeNet5'):
        BranchedEncoder(dict(type='mmpretrain.LeNet5', num_classes=-1), TASKS)
    with pytest.raises(KeyError, match='NoSuchNet'):
        BranchedEncoder(dict(type='NoSuchNet'), TASKS)


def test_thin_vgg_is_narrow_and_splits_per_layer():
    thin = dict(type='ThinVGG', width=32, depth=16, num_classes=-1,
                norm_cfg=dict(type='BN'), out_indices=(4, ))
    enc = BranchedEncoder(thin, TASKS, granularity='layer')
    assert len(enc.block_names) == 13
    x = torch.randn(2, 3, 64, 64)
    enc.eval()
    out = enc(x)['a'][-1]
    assert out.shape == (2, 32, 2, 2)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(c.out_channels for c in convs) == 32
    # stock VGG-16 has 14.7M conv parameters; thin-32 far fewer
    assert sum(enc.block_params) < 150_000
    with pytest.raises(ValueError, match='num_classes=-1'):
        build_stock(dict(thin, num_classes=10))
