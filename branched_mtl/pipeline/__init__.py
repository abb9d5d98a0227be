"""The main job (tools/branch.py): every step of the method, resumable."""
from .branch import BranchJob
from .seeds import run_seeds, summarise_seeds
from .stages import StageBook, fingerprint

__all__ = [
    'BranchJob', 'StageBook', 'fingerprint', 'run_seeds', 'summarise_seeds'
]
