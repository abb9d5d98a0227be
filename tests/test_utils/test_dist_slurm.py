"""Slurm's variables -> torch.distributed's, for CPU clusters."""
import pytest

from branched_mtl.utils import dist


def test_slurm_env_and_port(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '1')
    monkeypatch.setenv('SLURM_NTASKS', '2')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node7')
    monkeypatch.setenv('SLURM_JOB_ID', '123457')
    monkeypatch.setattr(dist, '_first_host', lambda nodes: nodes)
    dist._slurm_env()
    import os
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'],
            os.environ['LOCAL_RANK'], os.environ['MASTER_ADDR']) == (
                '1', '2', '1', 'node7')
    # array tasks on one node get different ports (job ids differ)
    assert os.environ['MASTER_PORT'] == str(20000 + 123457 % 20000)
    monkeypatch.setenv('SLURM_JOB_ID', '123458')
    assert dist.slurm_master_port() != 20000 + 123457 % 20000


def test_slurm_outside_a_job_step(monkeypatch):
    from mmengine.config import Config
    monkeypatch.delenv('SLURM_PROCID', raising=False)
    monkeypatch.setattr(dist.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(dist.torch.distributed, 'is_initialized',
                        lambda: False)
    with pytest.raises(RuntimeError, match='start it with srun'):
        dist.prepare_cpu_distributed(Config(dict(launcher='slurm')))
