from .dense_transforms import DenseRandomFlip, DenseResize, add_dense_field
from .formatting import PackDenseTaskInputs
from .loading import LoadCityscapesAnnotations, LoadNormalMap

__all__ = [
    'DenseRandomFlip', 'DenseResize', 'PackDenseTaskInputs', 'add_dense_field',
    'LoadCityscapesAnnotations', 'LoadNormalMap'
]
