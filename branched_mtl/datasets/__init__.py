from . import transforms  # noqa: F401
from .celeba import CelebA
from .cityscapes import CityscapesMultiTask
from .multi_digits import MultiDigits
from .nyu import NYUv2MultiTask
from .nyu_mat import NYUv2MatMultiTask
from .planted_digits import PlantedDigits
from .probe_split import ProbeSplit, probe_indices
from .precollated import PrecollatedDataset, precollate_loader  # noqa: F401
from .sunrgbd import SUNRGBDMultiTask, export_sunrgbd_labels
from .synthetic_scenes import SyntheticScenes

__all__ = [
    'MultiDigits', 'SyntheticScenes', 'CityscapesMultiTask', 'NYUv2MultiTask',
    'CelebA', 'ProbeSplit', 'probe_indices', 'NYUv2MatMultiTask',
    'SUNRGBDMultiTask', 'export_sunrgbd_labels', 'PlantedDigits'
]
