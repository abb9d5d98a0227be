import pickle

import pytest
import torch

import branched_mtl.compat  # noqa: F401


def test_mmseg_imports_and_point_sample_runs():
    import mmcv.ops
    from mmseg.models import PSPHead  # noqa: F401
    feats = torch.arange(16.).view(1, 1, 4, 4)
    pts = torch.tensor([[[0.5, 0.5]]])
    out = mmcv.ops.point_sample(feats, pts, align_corners=False)
    assert out.shape == (1, 1, 1)


def test_missing_compiled_op_fails_clearly_when_used():
    import mmcv.ops
    op = mmcv.ops.nms  # importing it must not fail (mmseg does so at import)
    with pytest.raises(ModuleNotFoundError, match='mmcv.ops.nms needs'):
        op(torch.zeros(1, 4), torch.zeros(1), 0.5)
    with pytest.raises(AttributeError):
        mmcv.ops.__wrapped__  # dunders stay AttributeError for inspect


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(message_hub=hub.state_dict(), state_dict={}), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5


class Evil:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_weights_only_still_refuses_code(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump(Evil(), f)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_config_formatting_is_memoized():
    """yapf runs once per distinct config text (Config.pretty_text is
    called about five times per run)."""
    import mmengine.config.config as config_module
    from mmengine.config import Config
    info = config_module.FormatCode.cache_info
    cfg = Config(dict(model=dict(type='M', depth=18), lr=0.01123581321))
    before = info()
    first = cfg.pretty_text
    assert cfg.pretty_text == first
    assert Config(cfg.to_dict()).pretty_text == first
    after = info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    cfg.lr = 0.5
    assert 'lr=0.5' in cfg.pretty_text.replace(' ', '')
    assert info().misses == after.misses + 1


def test_config_formatting_can_be_turned_off():
    """Sweep workers skip yapf: the text is still a loadable config."""
    from mmengine.config import Config

    from branched_mtl.compat import format_configs
    cfg = Config(dict(model=dict(type='M', depth=18), lr=0.25))
    pretty = cfg.pretty_text
    format_configs(False)
    try:
        plain = cfg.pretty_text
    finally:
        format_configs(True)
    assert plain != pretty
    assert Config.fromstring(plain, '.py').to_dict() == cfg.to_dict()
    assert cfg.pretty_text == pretty


def test_amp_version_checks_answer_from_a_table_filled_eagerly():
    import inspect
    import re

    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as amp
    from mmengine.utils import digit_version
    from mmengine.utils.dl_utils import TORCH_VERSION

    for module in (amp, amp_wrapper):
        table = module.digit_version._branched_mtl_table
        # every version string the AMP code compares must already be a
        # constant when dynamo traces it (a new mmengine may add one)
        literals = re.findall(r"digit_version\('([^']+)'\)",
                              inspect.getsource(module))
        assert literals
        for version in literals + [TORCH_VERSION, torch.__version__]:
            assert (version, 4) in table, version
            assert module.digit_version(version) == digit_version(version)
    # an unknown string still answers, as the original does, and is kept
    assert amp.digit_version('3.1.4rc1') == digit_version('3.1.4rc1')
    assert ('3.1.4rc1', 4) in amp.digit_version._branched_mtl_table


def test_amp_version_check_traces_in_one_graph():
    import mmengine.runner.amp as amp
    from mmengine.utils.dl_utils import TORCH_VERSION

    def step(x):
        if amp.digit_version(TORCH_VERSION) >= amp.digit_version('1.5.0'):
            return x * 2
        return x

    compiled = torch.compile(step, backend='eager', fullgraph=True)
    assert torch.equal(compiled(torch.ones(3)), torch.full((3, ), 2.))
