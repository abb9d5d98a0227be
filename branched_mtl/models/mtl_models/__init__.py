from .branched_mtl_model import BranchedMultiTaskModel

__all__ = ['BranchedMultiTaskModel']
