"""Ways of deciding the architecture, one interface
(:class:`BaseMethod` -> :class:`Decision`), registered in
:data:`branched_mtl.registry.METHODS`: the affinity methods of the paper
and TAG, and TAG's own selection. Projects register theirs (Learning to
Branch, AdaShare) from their own modules through ``custom_imports``."""
from typing import Dict, List, Optional

from branched_mtl.registry import METHODS
from branched_mtl.utils.errors import UserError
from .base import AffinityMethod, BaseMethod, Decision, MethodContext
# isort: off  (the registration order is the methods' order in tables)
from .rsa import RSAMethod
from .tournament import TournamentMethod
from .tag import TagMethod
from .tag_groups import TagGroupsMethod
# isort: on

# the references every comparison trains (not ways of deciding)
REFERENCES = ('single_task', 'all_shared')

__all__ = ['BaseMethod', 'AffinityMethod', 'Decision', 'MethodContext',
           'RSAMethod', 'TournamentMethod', 'TagMethod', 'TagGroupsMethod',
           'REFERENCES', 'method_names', 'build_method', 'method_label',
           'method_marker', 'known_methods', 'settings_keys',
           'branch_settings', 'drop_method_imports', 'parse_methods']

_REFERENCE_LABELS = dict(single_task='single-task', all_shared='all-shared')
_REFERENCE_MARKERS = dict(single_task=('tab:green', 'D'),
                          all_shared=('tab:blue', 's'))


def method_names() -> List[str]:
    """The registered methods, in the order they were registered (the
    package's first, then the projects' that were imported)."""
    return list(METHODS.module_dict)


def build_method(name: str, option: str = '--methods') -> BaseMethod:
    """The registered method ``name``.

    Args:
        name: A registered name (``rsa``, ``tournament``, a project's).
        option: The option that named it, for the error.

    Raises:
        UserError: one line naming the unknown method and the known ones.
    """
    cls = METHODS.module_dict.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UserError(
            f'{option}: unknown method {name!r}; registered: '
            f'{", ".join(method_names())} (a project\'s method is registered '
            'by importing it: custom_imports in the config)')
    return cls(name)


def method_label(name: str) -> str:
    """A method's name in tables and figures."""
    if name in _REFERENCE_LABELS:
        return _REFERENCE_LABELS[name]
    cls = METHODS.module_dict.get(name)
    return (cls.label or name) if cls is not None else name


def method_marker(name: str) -> tuple:
    """A method's matplotlib colour and marker."""
    if name in _REFERENCE_MARKERS:
        return _REFERENCE_MARKERS[name]
    cls = METHODS.module_dict.get(name)
    return cls.marker if cls is not None else BaseMethod.marker


def known_methods() -> List[str]:
    """The references and every registered method (the projects' once
    imported), in table order."""
    return list(REFERENCES) + method_names()


def settings_keys() -> Dict[str, str]:
    """``{method: config key}`` of the registered methods with search
    settings of their own: kept out of the config the models train with,
    so that changing them reruns only that method."""
    return {name: METHODS.module_dict[name].settings_key
            for name in method_names()
            if METHODS.module_dict[name].settings_key}


def branch_settings(branch: Optional[dict], method: str) -> Optional[dict]:
    """The config's ``branch`` dict as ``method`` reads it: without the
    entries that only other registered methods read (their
    ``branch_keys``), for the method's record key.

    Args:
        branch: The config's ``branch`` dict, or None.
        method: A registered method's name.

    Returns:
        The dict without those entries (``branch`` itself when None).
    """
    if branch is None:
        return None
    cls = METHODS.module_dict.get(method)
    own = set(cls.branch_keys) if cls is not None else set()
    others = {k for name, other in METHODS.module_dict.items()
              if name != method for k in other.branch_keys} - own
    return {k: v for k, v in branch.items() if k not in others}


def drop_method_imports(cfg) -> List[str]:
    """Remove from ``cfg.custom_imports`` the modules that register a
    method of :data:`METHODS` (a project's methods): like the
    methods' search settings they decide how the comparison runs, not how
    a model trains, so adding a project to a comparison leaves the
    fingerprints of the models already trained unchanged. A method whose
    result needs its module (a derived encoder) names it in
    :attr:`Decision.imports`.

    Args:
        cfg: The comparison's config (changed in place).

    Returns:
        The imports removed.
    """
    imports = list((cfg.get('custom_imports') or {}).get('imports') or [])
    homes = {METHODS.module_dict[name].__module__ for name in method_names()}
    dropped = [m for m in imports
               if m != 'branched_mtl' and not m.startswith('branched_mtl.')
               and any(h == m or h.startswith(m + '.') for h in homes)]
    if dropped:
        cfg.custom_imports.imports = [m for m in imports if m not in dropped]
    return dropped


def parse_methods(text: str, option: str = '--methods') -> List[str]:
    """A comma-separated list of method names, as the tools take it.

    Raises:
        UserError: one line where the text names no method (an empty list
            must not mean every method).
    """
    methods = [m.strip() for m in text.split(',') if m.strip()]
    if not methods:
        raise UserError(f'{option} {text!r} names no method')
    return methods
