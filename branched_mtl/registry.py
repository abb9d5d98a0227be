"""Registries of the ``branched_mtl`` scope.

Children of mmengine's root registries, like mmseg's and mmpretrain's, so a
config can name our types and stock ones side by side: bare names resolve in
our scope first, ``mmseg.PSPHead`` / ``mmpretrain.ResNet`` in theirs. Our
``MultiTaskHead`` lives only here, so it never clashes with mmpretrain's.
"""
import copy
import importlib
from typing import Any, Sequence

from mmengine import registry as mmengine_registry
from mmengine.registry import Registry

# Every kind of registry mmengine has, so that under default_scope
# 'branched_mtl' the Runner finds its loops, optimizers, hooks ... through
# the parent without warnings.
_LOCATIONS = {
    'MODELS': ['branched_mtl.models'],
    'DATASETS': ['branched_mtl.datasets'],
    'TRANSFORMS': ['branched_mtl.datasets.transforms'],
    'METRICS': ['branched_mtl.evaluation'],
    'HOOKS': ['branched_mtl.engine'],
    'INFERENCERS': ['branched_mtl.apis.inference'],
}
_KINDS = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
          'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
          'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
          'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
          'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS',
          'LOG_PROCESSORS', 'INFERENCERS', 'FUNCTIONS')


def _child(kind: str) -> Registry:
    parent = getattr(mmengine_registry, kind)
    return Registry(parent.name, parent=parent, scope='branched_mtl',
                    locations=_LOCATIONS.get(kind, []))


RUNNERS = _child('RUNNERS')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
HOOKS = _child('HOOKS')
DATASETS = _child('DATASETS')
DATA_SAMPLERS = _child('DATA_SAMPLERS')
TRANSFORMS = _child('TRANSFORMS')
MODELS = _child('MODELS')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS')
METRICS = _child('METRICS')
EVALUATOR = _child('EVALUATOR')
TASK_UTILS = _child('TASK_UTILS')
VISUALIZERS = _child('VISUALIZERS')
VISBACKENDS = _child('VISBACKENDS')
LOG_PROCESSORS = _child('LOG_PROCESSORS')
INFERENCERS = _child('INFERENCERS')
FUNCTIONS = _child('FUNCTIONS')


def import_locations(kinds: Sequence[str] = ('MODELS', 'DATASETS',
                                              'TRANSFORMS', 'METRICS',
                                              'HOOKS')) -> None:
    """Import the modules that register our components: the import
    locations of these registries (mmengine's own mechanism, which a build
    through them triggers too).

    Args:
        kinds: The registries, by their names in this module (inferencers
            are left out by default: they import the whole pipeline).
    """
    for kind in kinds:
        globals()[kind].import_from_location()


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
    if not scope:
        if name in registry.module_dict:
            scope = registry.scope
        elif registry.get(name) is not None:
            # mmengine's own (root) components: no scope to switch to
            return registry.build(cfg)
        else:
            scope = next((s for s in STOCK_SCOPES
                          if name in _scope_registry(s, registry).module_dict),
                         None)
    if scope:
        # _scope_ makes nested builds (a head's loss, a metric's parts)
        # resolve in the component's own scope whatever the default scope
        cfg.update(type=name, _scope_=scope)
        return registry.build(cfg)
    raise KeyError(
        f'{name!r} is not registered in branched_mtl nor in '
        f'{", ".join(STOCK_SCOPES)} ({registry.name} registries); write '
        f'e.g. "mmseg.{name}" to name its scope')


class SplitterRegistry:
    """Block splitters, keyed by backbone class.

    A splitter cuts a built stock backbone into its sharable blocks (see
    :func:`branched_mtl.models.split_backbone`). It is looked up along the
    backbone's MRO, so a subclass that only changes how layers are built
    (ResNetV1c, ResNeXt, SEResNet, Res2Net) uses its parent's splitter. A
    subclass that overrides ``forward`` does not: the parent's blocks would
    re-chain the parent's forward, not its own, so it needs a splitter of
    its own.

    Keys are classes or their dotted paths (``'mmseg.models.backbones.mit.
    MixVisionTransformer'``), so registering a splitter does not import the
    package that defines the backbone.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._splitters: dict = {}

    @staticmethod
    def _key(cls: Any) -> str:
        if isinstance(cls, str):
            return cls
        return f'{cls.__module__}.{cls.__qualname__}'

    def register(self, *backbones: Any, force: bool = False):
        """Decorator registering ``fn(backbone, granularity) -> blocks``.

        Args:
            backbones: The backbone classes (or dotted class paths) the
                function splits.
            force: Replace a splitter registered before for one of them.

        Returns:
            The decorator, which returns the function unchanged.
        """
        if not backbones:
            raise TypeError('register_splitter needs at least one backbone '
                            'class (or dotted class path)')

        def _register(fn):
            for backbone in backbones:
                key = self._key(backbone)
                if key in self._splitters and not force and \
                        self._splitters[key] is not fn:
                    raise KeyError(f'{key} already has a block splitter '
                                   f'({self._splitters[key].__qualname__}); '
                                   'pass force=True to replace it')
                self._splitters[key] = fn
            return fn

        return _register

    def __contains__(self, cls: Any) -> bool:
        return self._key(cls) in self._splitters

    def keys(self) -> list:
        """The dotted paths of the registered backbone classes."""
        return sorted(self._splitters)

    def get(self, backbone: Any):
        """The splitter of a backbone (an instance or class).

        Raises:
            TypeError: one line naming the backbone when no class on its MRO
                has a splitter, or when a class below the registered one
                overrides ``forward``.
        """
        cls = backbone if isinstance(backbone, type) else type(backbone)
        overrides = None
        for c in cls.__mro__:
            fn = self._splitters.get(self._key(c))
            if fn is not None:
                if overrides is not None:
                    raise TypeError(
                        f'{self._key(cls)} cannot be split with the block '
                        f'splitter of {self._key(c)}: {self._key(overrides)} '
                        'overrides its forward; register a splitter for it '
                        '(see docs/backbones.md)')
                return fn
            if overrides is None and 'forward' in vars(c):
                overrides = c
        raise TypeError(
            f'no block splitter for backbone {self._key(cls)}; register one '
            'with branched_mtl.registry.register_splitter (see '
            'docs/backbones.md)')


# Block splitters of the backbones BranchedEncoder shares among tasks
# (registered in branched_mtl/models/encoders/splitters/).
BLOCK_SPLITTERS = SplitterRegistry('block splitter')
register_splitter = BLOCK_SPLITTERS.register


# Ways of deciding the architecture (branched_mtl/pipeline/methods/): the
# package registers the affinity methods and TAG's own selection; projects
# register theirs from their modules (config ``custom_imports``).
METHODS = Registry('method', scope='branched_mtl',
                   locations=['branched_mtl.pipeline.methods'])
