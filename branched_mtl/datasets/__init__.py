from . import transforms  # noqa: F401
from .multi_digits import MultiDigits
from .synthetic_scenes import SyntheticScenes

__all__ = ['MultiDigits', 'SyntheticScenes']
