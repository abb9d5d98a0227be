"""Config -> Runner: the one code path behind tools/train.py, tools/test.py
and the stages of tools/branch.py.

Every runner built here also

* writes its checkpoints atomically (temp file + rename), so a crash or a
  full disk never leaves a file that looks complete;
* resumes from the newest checkpoint that loads, setting corrupt newer
  ones aside by name;
* names the file in every checkpoint loading error;
* checks before training that the model's tasks, the data's labels and the
  evaluators agree (:class:`TaskCheckHook`), and validates a resumed step
  whose validation a crash cut off (:class:`ResumeValidationHook`);

and :func:`train` holds the work dir's lock (one run per work dir).
"""
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Union

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from branched_mtl.utils import (UserError, WorkDirLock,
                                prepare_cpu_distributed)
from branched_mtl.utils.config import type_name
from branched_mtl.utils.checkpoints import (LOAD_ERRORS, checkpoint_error,
                                            install_atomic_checkpoints,
                                            select_resume_checkpoint)

# added to every run (by type name, so a config may also list them itself)
RELIABILITY_HOOKS = ('TaskCheckHook', 'ResumeValidationHook')


def load_config(config: str,
                work_dir: Optional[str] = None,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                amp: bool = False,
                resume: Union[bool, str] = False) -> Config:
    """Read a config and apply the usual command-line overrides.

    Args:
        config: Path of the config file.
        work_dir: Work dir (default: the config's, else
            ``work_dirs/<config name>``).
        cfg_options: ``--cfg-options`` as a dict.
        launcher: ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        amp: Turn on automatic mixed precision.
        resume: ``True``: resume from the newest checkpoint of the work
            dir that loads; a path: resume from that checkpoint.

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
        if not str(work_dir).strip():  # '' would train into nowhere
            raise UserError(f'--work-dir {work_dir!r} is empty; give a '
                            'folder (it is created if missing)')
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
    if isinstance(resume, str) and resume != 'auto':
        # an explicit checkpoint: mmengine resumes from load_from
        if not osp.isfile(resume):
            raise checkpoint_error(resume, FileNotFoundError(resume))
        cfg.load_from = resume
        resume = True
    cfg.resume = bool(resume)
    return cfg


def _rank(cfg: Config) -> int:
    """This process's rank before the process group exists."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'slurm':
        return int(os.environ.get('SLURM_PROCID', 0))
    if launcher in ('pytorch', 'mpi'):
        return int(os.environ.get('RANK', os.environ.get(
            'OMPI_COMM_WORLD_RANK', 0)))
    return 0


def _add_reliability_hooks(cfg: Config) -> None:
    hooks = list(cfg.get('custom_hooks') or [])
    names = {type_name(h) for h in hooks if isinstance(h, dict)}
    for name in RELIABILITY_HOOKS:
        if name not in names:
            hooks.append(dict(type=f'branched_mtl.{name}'))
    cfg.custom_hooks = hooks


def _load_from_local(filename: str, map_location=None) -> dict:
    """mmengine's local checkpoint loader, with errors that name the file
    and say what to do (instead of a bare EOFError or torch's advice to
    turn weights_only off)."""
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise checkpoint_error(filename, FileNotFoundError(filename))
    try:
        return torch.load(filename, map_location=map_location)
    except LOAD_ERRORS as e:
        raise checkpoint_error(filename, e) from e


def _install_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)


def _choose_resume(cfg: Config, messages: List[str]) -> None:
    """Auto-resume from the newest checkpoint that loads: newer ones that
    do not are reported and set aside (by rank 0 only)."""
    if not cfg.get('resume') or cfg.get('load_from'):
        return
    work_dir = cfg.get('work_dir')
    if not work_dir or not osp.isdir(work_dir):
        return
    chosen = select_resume_checkpoint(work_dir, log=messages.append,
                                      rename=_rank(cfg) == 0)
    if chosen is None:
        messages.append(f'no checkpoint to resume from in {work_dir}; '
                        'training starts from scratch')
        cfg.resume = False
    else:
        cfg.load_from = chosen


def build_runner(cfg: Config) -> Runner:
    """A Runner for ``cfg`` (custom ``runner_type`` honoured), with atomic
    checkpoints, safe resume and the task checks (see the module doc)."""
    prepare_cpu_distributed(cfg)
    install_atomic_checkpoints()
    _install_checkpoint_loader()
    _add_reliability_hooks(cfg)
    messages: List[str] = []
    _choose_resume(cfg, messages)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    for text in messages:  # the console and the run's log file
        runner.logger.warning(text)
    return runner


def train(cfg: Config) -> Runner:
    """Train and return the runner (its work dir holds the checkpoints).

    Rank 0 holds the work dir's lock for the whole run: a second run in the
    same work dir stops at once and names this one.
    """
    lock = None
    if _rank(cfg) == 0 and cfg.get('work_dir'):
        lock = WorkDirLock(cfg.work_dir).acquire()
    try:
        runner = build_runner(cfg)
        runner.train()
    finally:
        if lock is not None:
            lock.release()
    return runner


def evaluate(cfg: Config, checkpoint: str) -> Dict[str, float]:
    """Test ``checkpoint`` on the config's test set.

    Returns:
        The test metrics.
    """
    if not osp.isfile(checkpoint):
        raise checkpoint_error(checkpoint, FileNotFoundError(checkpoint))
    cfg = cfg.copy()
    cfg.load_from = checkpoint
    cfg.resume = False
    runner = build_runner(cfg)
    return {k: float(v) for k, v in runner.test().items()}
