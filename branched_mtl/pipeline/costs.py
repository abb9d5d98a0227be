"""Wall and CPU seconds of the stages that decide an architecture (the
search cost a comparison reports per method)."""
import contextlib
import json
import os.path as osp
import resource
import time
from typing import Any, Dict, Iterator, Sequence

from branched_mtl.utils import dump_json_atomic
from branched_mtl.utils.device import device_name


def _rusage_cpu() -> float:
    """CPU seconds (user + system) of this process and of its children that
    ended and were waited for (subprocesses, data loader workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        use = resource.getrusage(who)
        total += use.ru_utime + use.ru_stime
    return total


class CostBook:
    """Wall and CPU seconds of the stages that decide an architecture, in
    ``<folder>/cost.json`` (written atomically after each measured stage).

    Args:
        folder: Where ``cost.json`` lives.
    """

    def __init__(self, folder: str) -> None:
        self.path = osp.join(folder, 'cost.json')
        self.parts: Dict[str, Dict[str, Any]] = {}
        if osp.isfile(self.path):
            with open(self.path) as f:
                self.parts = json.load(f)

    @contextlib.contextmanager
    def measure(self, key: str) -> Iterator[None]:
        """Record the block's wall and CPU seconds as part ``key`` (only
        when it finishes: a failed stage leaves the earlier record)."""
        wall, cpu = time.perf_counter(), _rusage_cpu()
        yield
        wall, cpu = time.perf_counter() - wall, _rusage_cpu() - cpu
        device = device_name()
        part = dict(wall_s=wall, cpu_s=cpu, device=device)
        if device.startswith('GPU'):
            # one device per run here (launcher none)
            part['gpu_s'] = wall
        self.parts[key] = part
        dump_json_atomic(self.parts, self.path)

    def total(self, keys: Sequence[str]) -> Dict[str, Any]:
        """The sum over ``keys``; ``missing`` names parts never measured
        (e.g. a stage finished by an older run)."""
        have = [self.parts[k] for k in keys if k in self.parts]
        return dict(
            wall_s=sum(p['wall_s'] for p in have),
            cpu_s=sum(p['cpu_s'] for p in have),
            gpu_s=sum(p.get('gpu_s', 0.0) for p in have),
            devices=sorted({p['device'] for p in have}),
            parts=list(keys),
            missing=[k for k in keys if k not in self.parts])
