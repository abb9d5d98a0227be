"""Export of branched networks (ONNX, torch.export) and checks of exports."""
from .export import (EXPORT_FORMATS, TOLERANCE, TaskOutputs, check_export,
                     compare_outputs, eager_outputs, example_images,
                     export_checkpoint, export_format, export_model,
                     run_exported)

__all__ = [
    'TaskOutputs', 'EXPORT_FORMATS', 'export_format', 'export_model',
    'run_exported', 'eager_outputs', 'compare_outputs', 'check_export',
    'example_images', 'export_checkpoint', 'TOLERANCE'
]
