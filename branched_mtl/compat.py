"""Make the pinned OpenMMLab stack work on this machine (../shared/STACK.md).

Imported by ``branched_mtl/__init__.py`` before anything from mmseg:

1. mmcv-lite has no compiled ops, yet mmseg imports ``mmcv.ops`` unguarded in
   a few modules. A stand-in ``mmcv.ops`` module exposes the pure-PyTorch
   ``point_sample`` from mmcv's own source and raises a clear error for any
   op that really needs compiled code.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine's
   checkpoints hold a few non-tensor types (message hub, history buffers,
   numpy scalars). They are allow-listed, so resume works while a checkpoint
   still cannot run code. A history buffer also pickled its statistics
   functions through ``builtins.getattr``, which must never be allow-listed
   (it reaches any attribute of any allowed type); those functions are
   class-level and registered at import, so they are left out of the state.
3. mmengine resolves ``pkg::`` config bases only for the packages it lists
   (``mmengine.config.utils.MODULE2PACKAGE``); branched_mtl adds itself, so
   ``_base_ = 'branched_mtl::multidigits/branch_multidigits.py'`` finds the
   configs installed in ``branched_mtl/.mim`` once branched_mtl is imported.
   mmengine finds a package through ``pkg_resources``, missing with
   setuptools >= 81 and in Python 3.12 venvs: the look-up is replaced by
   one through ``importlib.metadata``, so a plain ``pip install .`` works.
4. ``compile=True`` with bf16/fp16 (``AmpOptimWrapper``): mmengine's
   ``autocast`` compares version strings with ``digit_version`` inside the
   compiled ``train_step``, and torch 2.11's dynamo fails to trace
   ``packaging.version.Version`` (``InternalTorchDynamoError``, seen on an
   H100). The AMP modules get a ``digit_version`` that answers from a table
   filled outside tracing, which dynamo reads as constants.
"""
import importlib.util
import os.path as osp
import sys
import types
from typing import Optional

_MISSING_OP_MSG = (
    "mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite does not "
    'ship (full mmcv does not build against torch 2.14 here). '
    'branched_mtl only provides the pure-PyTorch point_sample.')


def _missing_op(name: str) -> type:

    def __new__(cls, *args, **kwargs):
        raise ModuleNotFoundError(_MISSING_OP_MSG.format(name=name))

    return type(name, (), {'__new__': __new__, '__module__': 'mmcv.ops'})


def _install_mmcv_ops_stub() -> None:
    try:
        import mmcv.ops  # noqa: F401
        return
    except (ImportError, OSError):
        pass
    import mmcv
    stub = types.ModuleType('mmcv.ops')
    stub.__doc__ = 'branched_mtl stand-in for compiled mmcv.ops'
    stub.__path__ = []  # let `import mmcv.ops.x` fail as ModuleNotFoundError
    src = osp.join(osp.dirname(mmcv.__file__), 'ops', 'point_sample.py')
    spec = importlib.util.spec_from_file_location('mmcv.ops.point_sample', src)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules['mmcv.ops.point_sample'] = module
    stub.point_sample = module.point_sample
    stub.bilinear_grid_sample = module.bilinear_grid_sample

    def __getattr__(name: str):
        if name.startswith('__') and name.endswith('__'):
            # inspect and pickle probe dunders; they must see AttributeError
            raise AttributeError(name)
        # mmseg imports some ops at module level without a guard, so the
        # import must succeed; using the op is what fails, with a clear
        # message. A class serves both ops used as functions and as bases.
        return _missing_op(name)

    stub.__getattr__ = __getattr__
    sys.modules['mmcv.ops'] = stub
    mmcv.ops = stub


def _allow_mmengine_checkpoint_types() -> None:
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer, MessageHub

    HistoryBuffer.__getstate__ = _history_buffer_getstate

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    from collections import OrderedDict, defaultdict
    # what mmengine's checkpoints hold besides tensors: the message hub with
    # its history buffers, numpy arrays and scalars, config dicts
    safe = [HistoryBuffer, MessageHub, OrderedDict, defaultdict, np.ndarray,
            np.dtype, _reconstruct, scalar]
    safe += [type(np.dtype(t)) for t in (
        np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_,
        np.uint8)]
    from mmengine.config import ConfigDict
    safe.append(ConfigDict)
    torch.serialization.add_safe_globals(safe)


def _history_buffer_getstate(self) -> dict:
    # mmengine's own __getstate__ adds ``statistics_methods`` (functions,
    # pickled via getattr); __setstate__ already defaults it to {}.
    return {k: v for k, v in self.__dict__.items()
            if k != 'statistics_methods'}


def _register_config_package() -> None:
    from mmengine.config.utils import MODULE2PACKAGE

    # module -> distribution name, as for mmseg -> mmsegmentation; mmengine
    # then finds <package>/.mim/configs (setup.py fills it at install)
    MODULE2PACKAGE.setdefault('branched_mtl', 'branched_mtl')


_FORMAT_CONFIGS = [True]


def format_configs(enabled: bool) -> None:
    """Whether config texts (logs, dumped ``config.py``) go through yapf in
    this process. A sweep worker turns it off: each job's config differs,
    so the cache below cannot help, and yapf costs more than a short run
    trains; the texts stay valid Python, only not pretty-printed."""
    _FORMAT_CONFIGS[0] = bool(enabled)


def _memoize_config_formatting() -> None:
    """Format each config text with yapf once per process.

    ``Config.pretty_text`` runs yapf on every call, and a Runner calls it
    about five times per run (the log, ``dump_config``, the meta of each
    checkpoint): 0.7 s each for our configs, more than a short recombined
    run trains. yapf's ``FormatCode`` is a pure function of its text and
    style, so its results are kept (a bounded cache).
    """
    import functools
    import json

    import mmengine.config.config as config_module
    format_code = config_module.FormatCode
    if getattr(format_code, '_branched_mtl_memo', False):
        return

    @functools.lru_cache(maxsize=256)
    def formatted(text: str, style: str, kwargs: str) -> tuple:
        return format_code(text, style_config=json.loads(style),
                           **json.loads(kwargs))

    @functools.wraps(format_code)
    def memo(text: str, style_config=None, **kwargs) -> tuple:
        if not _FORMAT_CONFIGS[0]:
            return text, False
        try:
            key = (json.dumps(style_config, sort_keys=True),
                   json.dumps(kwargs, sort_keys=True))
        except TypeError:  # not a plain style: no caching
            return format_code(text, style_config=style_config, **kwargs)
        return formatted(text, *key)

    memo._branched_mtl_memo = True
    memo.cache_info = formatted.cache_info
    config_module.FormatCode = memo


# the version strings mmengine's AMP code compares (runner/amp.py,
# optim/optimizer/amp_optimizer_wrapper.py), besides torch's own
_AMP_VERSION_LITERALS = ('1.5.0', '1.6.0', '1.10.0', '2.0.0')


def _constant_digit_versions() -> None:
    """Give mmengine's AMP modules a ``digit_version`` that dynamo can trace.

    The table is filled here, eagerly; inside a compiled ``train_step`` a
    lookup of a known string is a read of a constant. An unknown string
    falls back to the original function (and is remembered).
    """
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as amp
    import torch
    from mmengine.utils import digit_version
    from mmengine.utils.dl_utils import TORCH_VERSION

    if getattr(amp.digit_version, '_branched_mtl_table', None) is not None:
        return
    table = {}

    def constant_digit_version(version_str: str, length: int = 4) -> tuple:
        key = (version_str, length)
        if key not in table:
            table[key] = digit_version(version_str, length)
        return table[key]

    for version in (TORCH_VERSION, torch.__version__) + _AMP_VERSION_LITERALS:
        constant_digit_version(version)
    constant_digit_version._branched_mtl_table = table
    amp.digit_version = constant_digit_version
    amp_wrapper.digit_version = constant_digit_version


def _find_module_dir(module: str) -> Optional[str]:
    """The folder of an importable top-level package, or None."""
    if osp.isabs(module):  # an editable install's top_level.txt (setup.py)
        return module if osp.isdir(module) else None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in (None, 'namespace'):
        return None
    return osp.dirname(spec.origin)


def is_installed(package: str) -> bool:
    """mmengine's ``is_installed`` without ``pkg_resources``."""
    from importlib import metadata
    try:
        metadata.distribution(package)
        return True
    except metadata.PackageNotFoundError:
        return _find_module_dir(package) is not None


def get_installed_path(package: str) -> str:
    """mmengine's ``get_installed_path`` without ``pkg_resources``: the
    folder of the distribution ``package`` (``mmsegmentation`` -> its
    ``mmseg``), found through ``importlib.metadata`` and the import system.

    Raises:
        ModuleNotFoundError: neither a distribution nor a module of that name.
    """
    from importlib import metadata
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        dist = None
    modules = [package]
    if dist is not None:
        modules += (dist.read_text('top_level.txt') or '').splitlines()
    for module in filter(None, (m.strip() for m in modules)):
        folder = _find_module_dir(module)
        if folder is not None:
            return folder
    if dist is not None:
        location = str(dist.locate_file(''))
        for module in modules:
            if module and osp.isdir(osp.join(location, module)):
                return osp.join(location, module)
    raise ModuleNotFoundError(f'{package} is not installed')


def _config_packages_without_pkg_resources() -> None:
    """mmengine finds the package of a ``pkg::`` config base through
    ``pkg_resources``, which setuptools >= 81 no longer ships and Python
    3.12 venvs lack: with a plain ``pip install .`` every ``mmseg::``,
    ``mmpretrain::`` and ``branched_mtl::`` base failed. The two look-ups
    are answered with ``importlib.metadata`` and ``importlib.util``
    instead, wherever mmengine imported them."""
    import mmengine.config.config as config_module
    import mmengine.utils as utils
    import mmengine.utils.package_utils as package_utils
    for module in (config_module, utils, package_utils):
        if hasattr(module, 'is_installed'):
            module.is_installed = is_installed
        if hasattr(module, 'get_installed_path'):
            module.get_installed_path = get_installed_path


def setup() -> None:
    """Apply the fixes; safe to call more than once."""
    _install_mmcv_ops_stub()
    _allow_mmengine_checkpoint_types()
    _register_config_package()
    _config_packages_without_pkg_resources()
    _memoize_config_formatting()
    _constant_digit_versions()


setup()
