"""Small helpers on config dicts."""
from typing import Mapping


def type_name(cfg: Mapping) -> str:
    """A config's type without its scope.

    Args:
        cfg: A config dict with a ``type`` (a name or a class).

    Returns:
        ``'branched_mtl.MultiTaskMetric'`` -> ``'MultiTaskMetric'``.
    """
    obj_type = cfg.get('type', '')
    name = obj_type if isinstance(obj_type, str) else getattr(
        obj_type, '__name__', '')
    return name.rpartition('.')[2]
