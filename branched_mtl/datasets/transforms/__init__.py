from .dense_transforms import DenseRandomFlip, DenseResize, add_dense_field
from .formatting import PackDenseTaskInputs

__all__ = [
    'DenseRandomFlip', 'DenseResize', 'PackDenseTaskInputs', 'add_dense_field'
]
