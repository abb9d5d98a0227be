"""Predictions on users' images: the model from config and checkpoint, and
mmengine's inferencer for branched models."""
from .inferencer import BranchedMTLInferencer, inference_size, list_images
from .model import check_checkpoint_fits, checkpoint_tree, init_model
from .samples import plot_test_predictions, predict_test_samples

__all__ = [
    'BranchedMTLInferencer', 'inference_size', 'list_images', 'init_model',
    'check_checkpoint_fits', 'checkpoint_tree', 'predict_test_samples',
    'plot_test_predictions'
]
