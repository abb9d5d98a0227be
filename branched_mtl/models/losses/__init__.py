from .dense_losses import DepthLoss, EdgeLoss, NormalLoss, OffsetLoss

__all__ = ['DepthLoss', 'EdgeLoss', 'NormalLoss', 'OffsetLoss']
