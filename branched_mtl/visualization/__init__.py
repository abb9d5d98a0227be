"""Figures of the method's intermediate results (matplotlib, imported lazily)."""
from .affinity import (mean_offdiagonal_affinity, plot_affinity_heatmaps,
                       plot_affinity_vs_depth)

__all__ = [
    'mean_offdiagonal_affinity', 'plot_affinity_heatmaps',
    'plot_affinity_vs_depth'
]
