"""branched_mtl: deciding what layers to share in multi-task networks."""
# compat must run before anything imports mmseg
from . import compat  # noqa: F401,I001
from . import datasets, engine, evaluation, models  # noqa: F401

__version__ = '0.1.0'
