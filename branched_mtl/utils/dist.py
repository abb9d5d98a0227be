"""Let the stock launchers (torchrun, Slurm) run on machines without GPUs."""
import os
import subprocess

import torch
from mmengine.config import Config

__all__ = ['prepare_cpu_distributed', 'slurm_master_port']


def slurm_master_port() -> int:
    """A master port of this Slurm job: 20000-39999 by job id.

    Array tasks of one sweep often share a node; mmengine's fixed default
    (29500) would make the second one fail with "address already in use".
    Each array task has its own job id, hence its own port.
    """
    job = int(os.environ.get('SLURM_JOB_ID', '0') or 0)
    return 20000 + job % 20000


def _first_host(node_list: str) -> str:
    try:
        out = subprocess.run(['scontrol', 'show', 'hostnames', node_list],
                             capture_output=True, text=True, timeout=30)
        hosts = out.stdout.split()
        if out.returncode == 0 and hosts:
            return hosts[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    # a single plain host name needs no expansion
    return node_list.split(',')[0] if '[' not in node_list else '127.0.0.1'


def _slurm_env() -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from Slurm's
    variables, as mmengine's ``_init_dist_slurm`` sets them."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = _first_host(
            os.environ.get('SLURM_NODELIST')
            or os.environ.get('SLURM_JOB_NODELIST', '127.0.0.1'))
    os.environ.setdefault('MASTER_PORT', str(slurm_master_port()))


def prepare_cpu_distributed(cfg: Config) -> None:
    """Adapt a distributed run to CPU-only machines (CI, laptops).

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and wraps
    the model with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. Here
    the gloo process group is created first (the Runner then skips its own
    init) and the wrapper gets ``device_ids=None``. Under Slurm the ranks
    and the master come from Slurm's variables; the master port, unless
    ``MASTER_PORT`` is set, from the job id (on GPUs too). Nothing else
    changes when CUDA is available or the launcher is ``none``.

    Args:
        cfg: The config, after ``cfg.launcher`` is set.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'slurm' and 'MASTER_PORT' not in os.environ \
            and 'SLURM_JOB_ID' in os.environ:
        os.environ['MASTER_PORT'] = str(slurm_master_port())
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not torch.distributed.is_initialized():
        if launcher == 'slurm':
            if 'SLURM_PROCID' not in os.environ:
                raise RuntimeError(
                    'launcher slurm outside a Slurm job step (no '
                    'SLURM_PROCID): start it with srun, e.g. through '
                    'tools/slurm_train.sh')
            _slurm_env()
        torch.distributed.init_process_group(
            backend='gloo', rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
