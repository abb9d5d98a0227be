"""Registries of the ``branched_mtl`` scope.

Children of mmengine's root registries, like mmseg's and mmpretrain's, so a
config can name our types and stock ones side by side: bare names resolve in
our scope first, ``mmseg.PSPHead`` / ``mmpretrain.ResNet`` in theirs. Our
``MultiTaskHead`` lives only here, so it never clashes with mmpretrain's.
"""
import copy
import importlib
from typing import Any, Sequence

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['branched_mtl.models'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['branched_mtl.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    locations=['branched_mtl.datasets.transforms'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['branched_mtl.evaluation'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, locations=['branched_mtl.engine'])


# Where a bare type name that is not ours is looked for, in this order.
STOCK_SCOPES: Sequence[str] = ('mmpretrain', 'mmseg')


def _scope_registry(scope: str, registry: Registry) -> Registry:
    importlib.import_module(f'{scope}.registry')
    root = registry._get_root_registry()
    child = root._search_child(scope)
    if child is None:
        raise KeyError(f'no {registry.name} registry for scope {scope!r}')
    child.import_from_location()
    return child


def build_stock(cfg: dict, registry: Registry = MODELS) -> Any:
    """Build a component from its own scope, with nested builds there too.

    ``type='mmseg.PSPHead'`` is built by mmseg's registry under mmseg's
    default scope (so the head's own losses resolve in mmseg); a bare name is
    looked up in ``branched_mtl`` first, then in mmpretrain and mmseg.

    Args:
        cfg: The component's config dict (with ``type``).
        registry: The ``branched_mtl`` registry of that kind (MODELS,
            METRICS, ...).

    Returns:
        The built component.
    """
    cfg = copy.deepcopy(dict(cfg))
    obj_type = cfg.get('type')
    if not isinstance(obj_type, str) or '_scope_' in cfg:
        return registry.build(cfg)
    scope, _, name = obj_type.rpartition('.')
    if scope:
        cfg.update(type=name, _scope_=scope)
        return registry.build(cfg)
    if registry.get(name) is not None:
        return registry.build(cfg)
    for scope in STOCK_SCOPES:
        if name in _scope_registry(scope, registry).module_dict:
            cfg['_scope_'] = scope
            return registry.build(cfg)
    raise KeyError(
        f'{name!r} is not registered in branched_mtl nor in '
        f'{", ".join(STOCK_SCOPES)} ({registry.name} registries); write '
        f'e.g. "mmseg.{name}" to name its scope')
