from .dense_transforms import (DenseRandomFlip, DenseResize, add_dense_field,
                               stretch_normals)
from .formatting import PackDenseTaskInputs
from .loading import (LoadCityscapesAnnotations, LoadNormalMap, LoadNYUv2Mat,
                      LoadSUNRGBDAnnotations, LoadTaskAnnotations,
                      LoadTaskDepthAnnotation, sunrgbd_depth_metres)

__all__ = [
    'DenseRandomFlip', 'DenseResize', 'PackDenseTaskInputs', 'add_dense_field',
    'LoadCityscapesAnnotations', 'LoadNormalMap', 'LoadNYUv2Mat',
    'LoadSUNRGBDAnnotations', 'LoadTaskAnnotations', 'LoadTaskDepthAnnotation',
    'stretch_normals', 'sunrgbd_depth_metres'
]
