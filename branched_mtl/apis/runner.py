"""Config -> Runner: the one code path behind tools/train.py, tools/test.py
and the stages of tools/branch.py."""
import logging
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from branched_mtl.utils import prepare_cpu_distributed


def load_config(config: str,
                work_dir: Optional[str] = None,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                amp: bool = False,
                resume: bool = False) -> Config:
    """Read a config and apply the usual command-line overrides.

    Args:
        config: Path of the config file.
        work_dir: Work dir (default: the config's, else
            ``work_dirs/<config name>``).
        cfg_options: ``--cfg-options`` as a dict.
        launcher: ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        amp: Turn on automatic mixed precision.
        resume: Resume from the latest checkpoint in the work dir.

    Returns:
        The config, ready for :func:`build_runner`.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    if amp:
        if cfg.optim_wrapper.type == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.',
                      logger='current', level=logging.WARNING)
        elif cfg.optim_wrapper.type != 'OptimWrapper':
            raise ValueError('--amp needs optim_wrapper.type OptimWrapper, '
                             f'got {cfg.optim_wrapper.type}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = resume
    return cfg


def build_runner(cfg: Config) -> Runner:
    """A Runner for ``cfg`` (custom ``runner_type`` honoured)."""
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(cfg: Config) -> Runner:
    """Train and return the runner (its work dir holds the checkpoints)."""
    runner = build_runner(cfg)
    runner.train()
    return runner


def evaluate(cfg: Config, checkpoint: str) -> Dict[str, float]:
    """Test ``checkpoint`` on the config's test set.

    Returns:
        The test metrics.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    cfg.resume = False
    runner = build_runner(cfg)
    return {k: float(v) for k, v in runner.test().items()}
