"""Block splitters of the supported backbones: an all-shared encoder loaded
from a stock checkpoint is the stock backbone (same outputs, bit for bit,
same parameters), a fully split tree has N times its parameters, per-block
FLOPs add up to the stock's and p_l follows the strides."""
import pytest
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

from branched_mtl.models import BranchedEncoder, split_backbone
from branched_mtl.registry import (BLOCK_SPLITTERS, build_stock,
                                   register_splitter)
from branched_mtl.tree import fully_separate

TASKS = ['a', 'b', 'c']
VIT = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
TINY = dict(depth=50, base_channels=8, stem_channels=8,
            out_indices=(0, 1, 2, 3))
# name: (stock config, granularity, p_l of each block at 128x128)
BACKBONES = {
    'resnext': (dict(type='mmpretrain.ResNeXt', groups=2, width_per_group=4,
                     **TINY), 'stage', [5, 3, 3, 2, 1]),
    'seresnet': (dict(type='mmpretrain.SEResNet', se_ratio=4, **TINY),
                 'stage', [5, 3, 3, 2, 1]),
    'res2net': (dict(type='mmpretrain.Res2Net', base_width=4, **TINY),
                'stage', [5, 3, 3, 2, 1]),
    'resnet-v1c-dilated': (dict(
        type='mmseg.ResNetV1c', depth=18, base_channels=8, stem_channels=8,
        strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
        out_indices=(0, 1, 2, 3)), 'stage', [3, 1, 1, 0, 0]),
    'resnet18-per-block': (dict(
        type='mmpretrain.ResNet', depth=18, base_channels=8,
        stem_channels=8, out_indices=(1, 3)), 'layer',
                           [5, 3, 3, 3, 2, 2, 1, 1, 0]),
    'regnet': (dict(type='mmpretrain.RegNet',
                    arch=dict(w0=8, wa=8.0, wm=2.0, group_w=8, depth=8,
                              bot_mul=1.0), base_channels=8,
                    out_indices=(0, 1, 2, 3)), 'stage', [5, 4, 3, 2, 1]),
    'mobilenet-v2': (dict(type='mmpretrain.MobileNetV2', widen_factor=0.25,
                          out_indices=(1, 2, 4, 7)), 'stage',
                     [5, 4, 4, 3, 2, 1, 1, 0, 0]),
    'mobilenet-v3': (dict(type='mmpretrain.MobileNetV3', arch='small',
                          out_indices=(0, 3, 8, 12)), 'stage',
                     [5, 4, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0]),
    'efficientnet-per-block': (dict(type='mmpretrain.EfficientNet',
                                    arch='es', out_indices=(2, 4, 6)),
                               'layer', [5, 4, 4, 3, 3, 2, 2, 2, 2] +
                               [1] * 9 + [0, 0]),
    'convnext': (dict(type='mmpretrain.ConvNeXt',
                      arch=dict(depths=[1, 1, 2, 1],
                                channels=[8, 16, 32, 64]),
                      out_indices=(0, 1, 2, 3)), 'stage', [5, 3, 3, 2, 1]),
    'convnext-gap-per-block': (dict(
        type='mmpretrain.ConvNeXt',
        arch=dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64]),
        gap_before_final_norm=True), 'layer', [5, 3, 3, 2, 1, 1]),
    'swin': (dict(type='mmpretrain.SwinTransformer',
                  arch=dict(embed_dims=8, depths=[1, 1, 2, 1],
                            num_heads=[1, 1, 2, 2]),
                  img_size=32, window_size=2, pad_small_map=True,
                  use_abs_pos_embed=True, out_indices=(0, 1, 2, 3)),
             'stage', [5, 3, 3, 2, 1]),
    'swin-seg-per-block': (dict(type='mmseg.SwinTransformer', embed_dims=8,
                                depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2],
                                window_size=2, out_indices=(0, 1, 2, 3)),
                           'layer', [5, 3, 3, 2, 1, 1]),
    'mit': (dict(type='mmseg.MixVisionTransformer', embed_dims=8,
                 num_layers=[1, 1, 2, 1], num_heads=[1, 1, 2, 2]), 'stage',
            [5, 3, 2, 1]),
    'vit-featmap': (dict(type='mmpretrain.VisionTransformer', arch=VIT,
                         img_size=32, patch_size=4, out_type='featmap',
                         out_indices=(1, 3)), 'stage', [2, 0, 0]),
    'vit-cls-split-points': (dict(type='mmpretrain.VisionTransformer',
                                  arch=VIT, img_size=32, patch_size=4),
                             [0, 2], [2, 0, 0, 0]),
    'deit-distilled': (dict(type='mmpretrain.DistilledVisionTransformer',
                            arch=VIT, img_size=32, patch_size=4), 'layer',
                       [2, 0, 0, 0, 0]),
    'vit-seg': (dict(type='mmseg.VisionTransformer', img_size=32,
                     patch_size=4, embed_dims=32, num_layers=4, num_heads=2,
                     mlp_ratio=2, out_indices=(1, 3)), 'stage', [2, 0, 0]),
}


def randomised_stock(cfg):
    """A stock backbone with random weights and batch-norm statistics."""
    stock = build_stock(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in stock.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for name, b in stock.named_buffers():
            if name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    stock.eval()
    return stock


def flat(features):
    # DeiT's class-token output is a (class, distillation) pair
    return [t for f in features
            for t in (f if isinstance(f, tuple) else (f, ))]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name', list(BACKBONES))
def test_encoder_from_stock_checkpoint_is_the_stock_backbone(name, tmp_path):
    cfg, granularity, pools = BACKBONES[name]
    stock = randomised_stock(cfg)
    path = tmp_path / 'stock.pth'
    torch.save(stock.state_dict(), path)
    pretrained = dict(cfg, init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path)))
    shared = BranchedEncoder(pretrained, TASKS, granularity=granularity)
    shared.init_weights()
    shared.eval()
    # the parameters are the stock's, block by block
    assert n_params(shared) == n_params(stock)
    assert sum(shared.block_params) == n_params(stock)
    for b, block in enumerate(split_backbone(stock, granularity)):
        node = shared.nodes[b][0].state_dict()
        for key, value in block.module.state_dict().items():
            assert torch.equal(node[key], value), (b, key)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ref = flat(stock(x))
        out = shared(x)
    for t in TASKS:
        got = flat(out[t])
        assert len(got) == len(ref)
        for o, r in zip(got, ref):
            assert o.shape == r.shape and torch.equal(o, r)
    # p_l: down-sampling steps from each block to the output
    assert shared.pools == pools

    # fully split: N stock backbones, each the stock one after init
    separate = BranchedEncoder(pretrained, TASKS,
                               fully_separate(TASKS, shared.num_blocks),
                               granularity=granularity)
    assert n_params(separate) == len(TASKS) * n_params(stock)
    assert separate.tree_params() == len(TASKS) * n_params(stock)
    separate.init_weights()
    separate.eval()
    with torch.no_grad():
        out = separate(x)
    for t in TASKS:
        assert all(torch.equal(o, r) for o, r in zip(flat(out[t]), ref))


@pytest.mark.parametrize('name', ['convnext', 'swin', 'mit', 'vit-featmap',
                                  'efficientnet-per-block'])
def test_block_flops_add_up_to_the_stock(name):
    cfg, granularity, _ = BACKBONES[name]
    shared = BranchedEncoder(cfg, TASKS, granularity=granularity)
    stock = build_stock(cfg)
    shared.eval()
    stock.eval()
    x = torch.zeros(1, 3, 32, 32)

    def analyse(model):
        analyzer = FlopAnalyzer(model, (x, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer

    encoder = analyse(shared)
    blocks = [encoder.total(f'nodes.{b}.0') for b in range(shared.num_blocks)]
    # every block costs something, and the output norms / class token
    # formatting are counted in their block: the sum is the stock's total
    assert min(blocks) > 0
    assert sum(blocks) == encoder.total() == analyse(stock).total()


def test_vit_split_points():
    cfg = BACKBONES['vit-featmap'][0]
    stock = build_stock(cfg)
    names = [b.name for b in split_backbone(stock, [0])]
    # a block also ends at each emitted layer (1, 3)
    assert names == ['stem', 'layer0', 'layer1', 'layer2-3']
    assert [b.name for b in split_backbone(stock, 'layer')][1:] == [
        f'layer{i}' for i in range(4)]
    with pytest.raises(ValueError, match='split point 4 is out of range'):
        split_backbone(stock, [1, 4])
    with pytest.raises(ValueError, match='split point -1 is out of range'):
        BranchedEncoder(cfg, TASKS, granularity=[-1])


def test_bad_input_is_named():
    with pytest.raises(TypeError, match='no block splitter for backbone '
                       r'mmpretrain\..*\.LeNet5'):
        BranchedEncoder(dict(type='mmpretrain.LeNet5', num_classes=-1), TASKS)
    with pytest.raises(ValueError,
                       match=r"ConvNeXt is split with granularity 'stage' or "
                       r"'layer', got \[1\] \(split points are for ViTs\)"):
        BranchedEncoder(BACKBONES['convnext'][0], TASKS, granularity=[1])
    with pytest.raises(ValueError, match="granularity must be one of"):
        BranchedEncoder(BACKBONES['convnext'][0], TASKS, granularity='block')

    class Extended(nn.Module):
        pass

    # a subclass that overrides forward does not inherit the splitter
    stock = build_stock(BACKBONES['convnext'][0])
    subclass = type('PatchedConvNeXt', (type(stock), ),
                    dict(forward=lambda self, x: x))
    with pytest.raises(TypeError, match='PatchedConvNeXt cannot be split '
                       'with the block splitter of .*ConvNeXt: '
                       '.*PatchedConvNeXt overrides its forward'):
        BLOCK_SPLITTERS.get(subclass)
    # ... one that does not (e.g. ResNeXt from ResNet) does
    assert BLOCK_SPLITTERS.get(type('Plain', (type(stock), ), {})) is \
        BLOCK_SPLITTERS.get(stock)
    with pytest.raises(TypeError, match='no block splitter for backbone '
                       '.*Extended'):
        BLOCK_SPLITTERS.get(Extended())


def test_a_backbone_is_added_by_registering_one_function():

    class TwoConvs(nn.Module):
        """A user's backbone: two stride-2 convs, both emitted."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, 2, 1)
            self.conv2 = nn.Conv2d(4, 8, 3, 2, 1)

        def forward(self, x):
            y = self.conv1(x)
            return y, self.conv2(y)

    from branched_mtl.models.encoders.backbone_blocks import (
        BackboneBlock, check_granularity)

    @register_splitter(TwoConvs)
    def two_convs_blocks(backbone, granularity):
        check_granularity(backbone, granularity, ('stage', ))
        return [BackboneBlock('conv1', backbone.conv1, 0),
                BackboneBlock('conv2', backbone.conv2, 1)]

    try:
        assert TwoConvs in BLOCK_SPLITTERS
        with pytest.raises(KeyError, match='already has a block splitter'):
            register_splitter(TwoConvs)(lambda backbone, granularity: [])
        stock = TwoConvs()
        blocks = split_backbone(stock)
        assert [b.name for b in blocks] == ['conv1', 'conv2']
        shared = nn.ModuleList(b.module for b in blocks)
        x = torch.randn(1, 3, 16, 16)
        y = shared[0](x)
        assert torch.equal(shared[1](y), stock(x)[1])
    finally:
        BLOCK_SPLITTERS._splitters.pop(BLOCK_SPLITTERS._key(TwoConvs))


@pytest.mark.parametrize('path, blocks', [
    ('convnext/convnext-tiny-upernet_all-shared_synthetic-scenes-64x128.py',
     ['stem', 'stage0', 'stage1', 'stage2', 'stage3']),
    ('swin/swin-tiny-upernet_all-shared_synthetic-scenes-64x128.py',
     ['stem', 'stage0', 'stage1', 'stage2', 'stage3']),
    ('segformer/mit-b0-segformer_all-shared_synthetic-scenes-64x128.py',
     ['stage0', 'stage1', 'stage2', 'stage3']),
])
def test_dense_configs_build_and_run(path, blocks):
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from branched_mtl.registry import MODELS
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'configs', path))
    init_default_scope('branched_mtl')
    model = MODELS.build(cfg.model)
    model.eval()
    assert model.encoder.block_names == blocks
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 128), mode='tensor')
    # the stock dense heads took the stock multi-scale features unchanged
    assert out['semseg'].shape == (1, 5, 16, 32)
    assert out['normals'].shape[:2] == (1, 3)
