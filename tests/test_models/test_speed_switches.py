"""The speed switches (docs/speed.md): each gives the numbers of the plain
fp32 path, within the precision it trades, and is really on.

- ``model.channels_last=True``: parameters and inputs channels-last,
  losses, gradients and predictions as the contiguous model's;
- ``optim_wrapper.type='AmpOptimWrapper'`` with ``dtype='bfloat16'`` /
  ``'float16'``: the model runs in that precision under mmengine's
  autocast, losses and updates close to fp32;
- ``compile``: mmengine's Runner compiles ``train_step``; same losses;
- ``env_cfg.cudnn_benchmark=True``: the Runner turns cuDNN's autotuner on.
"""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import OPTIM_WRAPPERS

from branched_mtl.registry import build_stock

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCENES_CFG = osp.join(ROOT, 'configs', 'synthetic_scenes',
                      'resnet50-d8-psp_all-shared_synthetic-scenes-256x512.py')
TASKS = ['semseg', 'depth', 'normals']
# shared stem .. layer2, then one branch per task: covers a branched tree
TREE = [[TASKS]] * 3 + [[[t] for t in TASKS]] * 2
SIZE = (32, 64)
_PSP = dict(in_channels=128, channels=16, pool_scales=(1, 2, 3, 6),
            dropout_ratio=0.0, norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False)


def model_cfg(channels_last: bool = False) -> dict:
    """The paper's dense model (dilated ResNet + PSP heads), made tiny: a
    quarter-width ResNet-18 and three dense tasks, branched."""
    return dict(
        type='branched_mtl.BranchedMultiTaskModel',
        channels_last=channels_last,
        data_preprocessor=dict(type='branched_mtl.DenseDataPreprocessor',
                               mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375],
                               pad_size_divisor=8),
        encoder=dict(
            type='branched_mtl.BranchedEncoder',
            backbone=dict(type='mmseg.ResNetV1c', depth=18, base_channels=16,
                          stem_channels=16, out_indices=(3, ),
                          dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                          contract_dilation=True),
            tasks=TASKS, branches=TREE),
        head=dict(type='branched_mtl.MultiTaskHead', task_heads=dict(
            semseg=dict(type='mmseg.PSPHead', num_classes=5, **_PSP),
            depth=dict(type='branched_mtl.PSPDepthHead', **_PSP),
            normals=dict(type='branched_mtl.PSPNormalHead', **_PSP))))


def build(channels_last: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    model = build_stock(model_cfg(channels_last))
    model.init_weights()
    return model.train()


@pytest.fixture(scope='module')
def scenes_batch() -> dict:
    """Two SyntheticScenes samples with all three dense targets, as the
    loader gives them."""
    from branched_mtl.datasets import SyntheticScenes
    ds = SyntheticScenes(split='train', num_samples=2, img_size=SIZE,
                         tasks=TASKS, pipeline=[dict(
                             type='branched_mtl.PackDenseTaskInputs',
                             num_classes=dict(semseg=5))])
    return pseudo_collate([ds[0], ds[1]])


def losses_and_grads(model, batch: dict):
    """Losses and parameter gradients of one forward/backward."""
    model.zero_grad()
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    grads = {n: p.grad.detach().clone()
             for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def conv_output_dtypes(model):
    """Record the output dtype of every convolution (hooks; remove after)."""
    seen, handles = [], []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out: seen.append(out.dtype)))
    return seen, handles


def is_channels_last(t: torch.Tensor) -> bool:
    # the channel stride is 1 in NHWC; size-1 channels are ambiguous
    return t.dim() == 4 and (t.shape[1] == 1 or t.stride(1) == 1)


# -- channels_last ---------------------------------------------------------

def test_channels_last_params_inputs_and_numbers(scenes_batch):
    ref = build(channels_last=False)
    fast = build(channels_last=True)
    fast.load_state_dict(ref.state_dict())
    convs = [p for p in fast.parameters()
             if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert convs and all(is_channels_last(p) for p in convs)
    # the switch is off by default: the plain model stays contiguous
    assert all(p.is_contiguous() for p in ref.parameters())
    assert not all(p.is_contiguous() for p in convs)

    seen = []
    stem = fast.encoder.nodes[0][0]
    handle = stem.register_forward_pre_hook(
        lambda mod, args: seen.append(is_channels_last(args[0])))
    l_ref, g_ref = losses_and_grads(ref, scenes_batch)
    l_fast, g_fast = losses_and_grads(fast, scenes_batch)
    handle.remove()
    assert seen == [True]  # the image batch reached the encoder as NHWC
    assert l_ref.keys() == l_fast.keys()
    for k in l_ref:
        torch.testing.assert_close(l_fast[k], l_ref[k], rtol=1e-4, atol=1e-5)
    assert g_ref.keys() == g_fast.keys()
    # other kernels sum in another order: rounding-level differences (a
    # wrong layout would give errors of order 1); tiny gradients after
    # batch norm over 1x1 pooled maps amplify them most (about 1e-3)
    for n in g_ref:
        err = (g_fast[n] - g_ref[n]).norm() / (g_ref[n].norm() + 1e-12)
        assert err < 5e-3, n
    flat = lambda g: torch.cat([v.flatten() for v in g.values()])  # noqa
    assert ((flat(g_fast) - flat(g_ref)).norm()
            / flat(g_ref).norm()) < 1e-3
    # gradients come back channels-last, so the optimizer step stays NHWC
    assert all(is_channels_last(p.grad) for p in convs)

    ref.eval(), fast.eval()
    data = ref.data_preprocessor(copy.deepcopy(scenes_batch), False)
    with torch.no_grad():
        out_ref = ref(**data, mode='tensor')
        out_fast = fast(**data, mode='tensor')
    for t in TASKS:
        torch.testing.assert_close(out_fast[t], out_ref[t], rtol=1e-4,
                                   atol=1e-4)


def test_channels_last_survives_init_and_device_moves():
    model = build(channels_last=True)
    model.init_weights()
    model.to('cpu')
    convs = [p for p in model.parameters()
             if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert all(is_channels_last(p) for p in convs)


# -- mixed precision through mmengine's AmpOptimWrapper --------------------

def amp_wrapper(model, dtype: str, monkeypatch):
    """mmengine's AmpOptimWrapper with SGD.

    mmengine builds it only where CUDA (or NPU/MLU/MUSA) is; on the CPU the
    test lifts that check alone: its autocast then runs on the CPU, and
    torch's GradScaler disables itself without CUDA (no loss scaling,
    which bfloat16 does not need). Everything else is mmengine's code.
    """
    if not torch.cuda.is_available():
        import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
        monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return OPTIM_WRAPPERS.build(dict(type='AmpOptimWrapper', dtype=dtype,
                                     optimizer=optimizer))


def train_step_update(model, wrapper, batch):
    """One mmengine train_step: its logged losses and each parameter's
    change."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = model.train_step(copy.deepcopy(batch), wrapper)
    delta = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    return {k: float(v) for k, v in log.items()}, delta


def check_update(d_amp: dict, d_ref: dict, min_cos: float) -> None:
    """Every parameter that fp32 moves moves in mixed precision too (no
    gradient path lost), finitely, and the whole update points the same
    way up to the precision's rounding."""
    for n, d in d_ref.items():
        assert torch.isfinite(d_amp[n]).all(), n
        if d.abs().max() > 0:
            assert d_amp[n].abs().max() > 0, n
    flat = lambda d: torch.cat([v.flatten() for v in d.values()])  # noqa
    cos = torch.nn.functional.cosine_similarity(flat(d_amp), flat(d_ref),
                                                dim=0)
    assert cos > min_cos


def test_bf16_amp_optim_wrapper(scenes_batch, monkeypatch):
    ref, amp = build(), build()
    amp.load_state_dict(ref.state_dict())
    sgd = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    log_ref, d_ref = train_step_update(
        ref, OPTIM_WRAPPERS.build(dict(type='OptimWrapper', optimizer=sgd)),
        scenes_batch)
    wrapper = amp_wrapper(amp, 'bfloat16', monkeypatch)
    assert wrapper.cast_dtype == torch.bfloat16
    seen, handles = conv_output_dtypes(amp)
    log_amp, d_amp = train_step_update(amp, wrapper, scenes_batch)
    for h in handles:
        h.remove()
    # really in bfloat16: every convolution ran in it
    assert seen and set(seen) == {torch.bfloat16}
    # master weights stay fp32
    assert all(p.dtype == torch.float32 for p in amp.parameters())
    for k in log_ref:
        if 'loss' in k:
            assert log_amp[k] == pytest.approx(log_ref[k], rel=3e-2,
                                               abs=1e-3), k
    # bfloat16 keeps 8 bits of mantissa: on this random-weight model the
    # update's cosine to fp32 is about 0.95 (the semseg head's about
    # 0.86); a wrong dtype path or a lost branch falls far lower
    check_update(d_amp, d_ref, min_cos=0.9)


def test_fp16_autocast_runs_the_model(scenes_batch):
    """float16 on the CPU: mmengine's ``autocast`` admits only bfloat16
    there (an assert in mmengine/runner/amp.py), so AmpOptimWrapper with
    ``dtype='float16'`` cannot run on the CPU; torch's own CPU autocast
    checks that the model, its heads and losses work and agree in
    float16. The wrapper itself with float16 and loss scaling:
    ``test_fp16_amp_optim_wrapper_cuda``."""
    ref, half = build(), build()
    half.load_state_dict(ref.state_dict())
    l_ref, g_ref = losses_and_grads(ref, scenes_batch)
    seen, handles = conv_output_dtypes(half)
    try:
        with torch.autocast('cpu', dtype=torch.float16):
            l_half, g_half = losses_and_grads(half, scenes_batch)
    except RuntimeError as e:  # pragma: no cover - depends on the build
        pytest.skip(f'this torch has no float16 CPU autocast: {e}')
    finally:
        for h in handles:
            h.remove()
    assert seen and set(seen) == {torch.float16}
    for k in l_ref:
        if 'loss' in k:
            assert l_half[k].item() == pytest.approx(l_ref[k].item(),
                                                     rel=2e-2, abs=1e-3), k
    # float16's 11-bit significand: cosine about 0.976 here
    check_update(g_half, g_ref, min_cos=0.95)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='float16 through AmpOptimWrapper needs CUDA: '
                    "mmengine's CPU autocast admits only bfloat16")
def test_fp16_amp_optim_wrapper_cuda(scenes_batch, monkeypatch):
    ref, amp = build().cuda(), build().cuda()
    amp.load_state_dict(ref.state_dict())
    sgd = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    log_ref, d_ref = train_step_update(
        ref, OPTIM_WRAPPERS.build(dict(type='OptimWrapper', optimizer=sgd)),
        scenes_batch)
    wrapper = amp_wrapper(amp, 'float16', monkeypatch)
    log_amp, d_amp = train_step_update(amp, wrapper, scenes_batch)
    assert wrapper.loss_scaler.is_enabled()
    for k in log_ref:
        if 'loss' in k:
            assert log_amp[k] == pytest.approx(log_ref[k], rel=2e-2,
                                               abs=1e-3), k
    check_update(d_amp, d_ref, min_cos=0.95)


# -- torch.compile through mmengine's Runner, cudnn.benchmark -------------

def tiny_scenes_config(tmp_path, iters: int = 2, **switches) -> Config:
    """The SyntheticScenes config shrunk to the tiny model, ``iters``
    iterations, with the given switches as --cfg-options would set them."""
    from branched_mtl.apis.runner import load_config
    options = {
        'model': model_cfg(),
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.num_samples': 4,
        'train_dataloader.dataset.img_size': SIZE,
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 100,
        'param_scheduler.0.end': iters,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 100,
        'default_hooks.checkpoint.save_last': False,
        'env_cfg.dist_cfg.backend': 'gloo',
    }
    options.update(switches)
    cfg = load_config(SCENES_CFG, work_dir=str(tmp_path / 'work'),
                      cfg_options=options)
    # no validation in a few iterations: leave the val loop out
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    # the Runner names its MessageHub after the experiment (config name and
    # start second): two runs in one second would share one loss history
    cfg.experiment_name = str(tmp_path).replace('/', '_')
    return cfg


def run_iters(cfg: Config):
    from branched_mtl.apis.runner import build_runner
    runner = build_runner(cfg)
    runner.train()
    return runner


def test_runner_switches_bf16_channels_last_cudnn_benchmark(tmp_path,
                                                            monkeypatch):
    if not torch.cuda.is_available():
        import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
        monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    old = torch.backends.cudnn.benchmark
    try:
        cfg = tiny_scenes_config(tmp_path, **{
            'optim_wrapper.type': 'AmpOptimWrapper',
            'optim_wrapper.dtype': 'bfloat16',
            'model.channels_last': True,
            'env_cfg.cudnn_benchmark': True})
        runner = run_iters(cfg)
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = old
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert runner.optim_wrapper.cast_dtype == torch.bfloat16
    model = runner.model
    assert model.channels_last
    convs = [p for p in model.parameters()
             if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert all(is_channels_last(p) for p in convs)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert runner.iter == 2 and loss == loss and loss > 0  # finite


COMPILE_SLOW = pytest.mark.skipif(
    os.environ.get('BRANCHED_MTL_SLOW') != '1',
    reason="torch.compile's inductor back end generates and builds C++ "
    'for the CPU: minutes for this model on a 2-core machine; '
    'BRANCHED_MTL_SLOW=1 runs it')


def compiled_vs_eager(tmp_path, backend: str, iters: int):
    """Training with and without ``compile`` from the same seed: the same
    losses."""
    eager = run_iters(tiny_scenes_config(tmp_path / 'eager', iters))
    compiled = run_iters(tiny_scenes_config(
        tmp_path / 'compiled', iters, compile=dict(backend=backend)))
    # mmengine replaced train_step by the compiled function
    assert hasattr(compiled.model.train_step, '_torchdynamo_orig_callable') \
        or 'compile' in type(compiled.model.train_step).__module__ \
        or 'eval_frame' in repr(compiled.model.train_step)
    for key in ('train/loss', 'train/semseg.loss_ce'):
        a = eager.message_hub.get_scalar(key).current()
        b = compiled.message_hub.get_scalar(key).current()
        assert b == pytest.approx(a, rel=1e-4, abs=1e-5), key


@COMPILE_SLOW
def test_compile_switch_eager_backend(tmp_path):
    """The Runner's ``compile`` switch with dynamo's ``eager`` back end:
    our model's train_step is traced (graph breaks allowed) and gives the
    eager losses. One iteration: the second recompiles the optimizer step
    (its momentum state appears), which is torch's, not ours, and costs
    as much again. Code generation: the slow test below."""
    compiled_vs_eager(tmp_path, 'eager', iters=1)


@COMPILE_SLOW
def test_compile_switch_inductor(tmp_path):
    compiled_vs_eager(tmp_path, 'inductor', iters=2)
