"""RSA: representation similarity of the single-task models' features on
the probe samples (the paper's fast affinity)."""
from typing import Any

from branched_mtl.affinity import collect_rsa, save_affinity
from branched_mtl.registry import METHODS
from .base import AffinityMethod


@METHODS.register_module(name='rsa')
class RSAMethod(AffinityMethod):
    """The affinity of the AffinityHook's probe features (step 2, RSA)."""
    label = 'RSA tree'
    marker = ('tab:red', '*')

    def measure(self, job: Any, path: str, fp: str) -> None:
        tasks, layers, aff, meta = collect_rsa(
            [job.folder('single_task', t) for t in job.tasks], tasks=job.tasks)
        save_affinity(path, tasks, layers, 'rsa', aff, meta)
