from . import transforms  # noqa: F401
from .celeba import CelebA
from .cityscapes import CityscapesMultiTask
from .multi_digits import MultiDigits
from .nyu import NYUv2MultiTask
from .synthetic_scenes import SyntheticScenes

__all__ = [
    'MultiDigits', 'SyntheticScenes', 'CityscapesMultiTask', 'NYUv2MultiTask',
    'CelebA'
]
