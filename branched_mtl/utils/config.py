"""Small helpers on config dicts."""
import math
from typing import Any, List, Mapping

from .errors import UserError

# settings of ``branch`` (and ``branch.sweep``) that change how fast the
# work runs, never its results: left out of every fingerprint and digest
RUN_ONLY_SETTINGS = ('max_parallel', 'precollate')


def result_settings(settings: Any) -> Any:
    """``settings`` (a ``branch`` or ``branch.sweep`` dict) without the
    keys that only change how the work runs (:data:`RUN_ONLY_SETTINGS`),
    for fingerprints; anything else unchanged.

    Args:
        settings: The settings (any value; dicts are cleaned recursively).

    Returns:
        The same settings without the run-only keys.
    """
    if not isinstance(settings, dict):
        return settings
    return {k: result_settings(v) for k, v in settings.items()
            if k not in RUN_ONLY_SETTINGS}


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


def check_number_list(values: Any, what: str) -> List[float]:
    """``values`` as floats: a non-empty list of distinct finite numbers
    >= 0 (the values of a size knob, say), or a one-line error.

    Args:
        values: The setting as given.
        what: Its name in the error (``method.knob_values``).

    Returns:
        The values as floats, in their order.

    Raises:
        UserError: naming ``what`` and the value.
    """
    ok = isinstance(values, (list, tuple)) and len(values) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) and v >= 0 for v in values)
    if not ok or len(set(values)) != len(values):
        text = str(values)
        text = text if len(text) <= 40 else text[:40] + '...'
        raise UserError(f'{what} must be a list of distinct finite numbers '
                        f'>= 0, got {text!r}')
    return [float(v) for v in values]
