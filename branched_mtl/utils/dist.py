"""Let the stock launchers (torchrun, Slurm) run on machines without GPUs."""
import os

import torch
from mmengine.config import Config


def prepare_cpu_distributed(cfg: Config) -> None:
    """Adapt a distributed run to CPU-only machines (CI, laptops).

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and wraps
    the model with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. Here
    the gloo process group is created first (the Runner then skips its own
    init) and the wrapper gets ``device_ids=None``. Nothing changes when CUDA
    is available or the launcher is ``none``.

    Args:
        cfg: The config, after ``cfg.launcher`` is set.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        if cfg.launcher == 'slurm':
            raise RuntimeError(
                'launcher slurm needs GPUs; use --launcher pytorch on CPU')
        torch.distributed.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
