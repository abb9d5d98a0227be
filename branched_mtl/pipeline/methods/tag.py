"""TAG's lookahead affinity (Fifty et al.): one all-shared run with the
TagHook, its inter-task affinity at every split searched into a tree like
the paper's affinities."""
from typing import Any, List

from branched_mtl.registry import METHODS
from ..measure import measure_tag, tag_settings
from .base import AffinityMethod


@METHODS.register_module(name='tag')
class TagMethod(AffinityMethod):
    """The lookahead affinity of one all-shared run (step 2, TAG's)."""
    label = 'TAG tree'
    marker = ('tab:orange', 'X')
    branch_keys = ('tag',)

    def check(self, job: Any) -> None:
        tag_settings(job.settings)

    def inputs(self, job: Any) -> List[Any]:
        # the run trains the config's all-shared network
        return [job.config_text(), job.settings.get('tag')]

    def weight(self, job: Any) -> float:
        # one all-shared run (its schedule) with the lookahead (about as
        # much again, measured on MultiDigits: docs/benchmarks.md)
        num = len(job.tasks)
        single = job.separate_params / num
        iters = job.cfg.get('train_cfg', {}).get('max_iters') or 1
        tag_iters = (job.settings.get('tag') or {}).get('iters', iters)
        return 2 * job.shared_params / single * tag_iters / iters

    def measure(self, job: Any, path: str, fp: str) -> None:
        measure_tag(job, path, fp)
