"""Planning a sweep: which recombined networks to train, as jobs."""
import copy
import json
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from branched_mtl.utils.errors import UserError
from ..checks import check_data_tasks, check_probe
from ..configs import (add_affinity_hook, add_early_stopping, config_tasks,
                       disable_validation,
                       encoder_block_names, recombined_config,
                       resolve_tasks_arg, set_data_fraction, set_train_iters,
                       shared_bottom_config, single_task_config)

MODES = ('per-pair', 'shared-bottom')
AFFINITY_FILE = 'affinity_tournament.json'
_SAFE_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')


@dataclass
class Job:
    """One training run of the sweep.

    Attributes:
        name: Unique name (``single_task/<task>`` or the folder name in
            ``jobs/``).
        stage: 0 for single-task runs, 1 for recombined runs.
        job_dir: The run's work dir.
        cfg: The run's config.
        needs: Names of the jobs whose checkpoints this one loads.
        info: ``task`` or ``target``/``source``/``split`` (for listings).
    """
    name: str
    stage: int
    job_dir: str
    cfg: Optional[Config] = field(default=None, repr=False)
    needs: Tuple[str, ...] = ()
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> str:
        return osp.join(self.job_dir, 'config.py')

    @property
    def script_path(self) -> str:
        return osp.join(self.job_dir, 'run.sh')

    @property
    def meta_path(self) -> str:
        return osp.join(self.job_dir, 'job.json')

    @property
    def done_path(self) -> str:
        return osp.join(self.job_dir, 'done.json')

    @property
    def log_path(self) -> str:
        return osp.join(self.job_dir, 'train.log')

    @property
    def attempts_path(self) -> str:
        return osp.join(self.job_dir, 'attempts.log')

    @property
    def lock_path(self) -> str:
        return osp.join(self.job_dir, '.lock')

    def is_done(self) -> bool:
        return osp.isfile(self.done_path)


@dataclass
class SweepPlan:
    """Every job of a sweep, in the order they may run.

    Attributes:
        work_dir: The sweep directory.
        tasks: The N tasks, in affinity order.
        splits: The swept split locations l (frozen blocks, 1..L).
        block_names: Names of the encoder's L blocks.
        mode: ``'per-pair'`` or ``'shared-bottom'``.
        jobs: Stage 0 jobs first, then stage 1.
        single_task_dir: The finished single-task runs it reads (None:
            they are its stage 0 jobs).
    """
    work_dir: str
    tasks: List[str]
    splits: List[int]
    block_names: List[str]
    mode: str
    jobs: List[Job]
    single_task_dir: Optional[str] = None

    def stage(self, stage: int) -> List[Job]:
        return [j for j in self.jobs if j.stage == stage]

    @property
    def affinity_path(self) -> str:
        return osp.join(self.work_dir, AFFINITY_FILE)


def parse_splits(value: Union[None, str, Sequence], block_names: List[str]
                 ) -> List[int]:
    """``'1,3'`` or ``'layer1,layer3'`` -> sorted split numbers.

    Args:
        value: Split numbers (frozen blocks, 1..L) or block names; None
            means every split.
        block_names: The encoder's block names, shallow to deep.

    Returns:
        Sorted, unique split numbers.
    """
    num = len(block_names)
    if value is None:
        return list(range(1, num + 1))
    items = value.split(',') if isinstance(value, str) else list(value)
    splits = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item in block_names:
            splits.append(block_names.index(item) + 1)
        elif item.isdigit() and 1 <= int(item) <= num:
            splits.append(int(item))
        else:
            raise ValueError(
                f'split {item!r}: give the number of frozen blocks (1..{num})'
                f' or a block name {block_names}')
    if not splits:
        raise ValueError('no split given')
    if len(set(splits)) != len(splits):
        raise ValueError(f'split given twice: {items}')
    return sorted(splits)


def _check_checkpoint(st_cfg: Config, path: str, task: str) -> str:
    """Resolve ``path`` and check it is ``task``'s single-task model of
    this config (same tensors, same shapes); errors name the file."""
    import torch  # noqa: F401  (compat allow-lists mmengine's types)

    from branched_mtl.engine.hooks.recombination_hook import (
        _check_single_task, load_state_dict_file, resolve_checkpoint)
    from branched_mtl.registry import build_stock
    try:
        file = resolve_checkpoint(path)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f'single-task run of {task!r}: {e}') from e
    state = load_state_dict_file(file)
    _check_single_task(state, file, task)
    model = build_stock(st_cfg.model)
    own = {k: v.shape for k, v in model.state_dict().items()
           if not k.startswith('data_preprocessor.')}
    theirs = {k: v.shape for k, v in state.items()
              if not k.startswith('data_preprocessor.')}
    missing = sorted(set(own) - set(theirs))
    extra = sorted(set(theirs) - set(own))
    shapes = [k for k in set(own) & set(theirs) if own[k] != theirs[k]]
    if missing or extra or shapes:
        raise ValueError(
            f'{file} does not fit the single-task model of {task!r} of this '
            f'config: missing {missing[:3]}, unexpected {extra[:3]}, other '
            f'shapes {shapes[:3]}')
    return osp.abspath(file)


def _check_model(cfg: Config, config: str) -> None:
    """Build the model once, so that a wrong type or argument is refused
    here rather than by every job."""
    from mmengine.registry import init_default_scope

    from branched_mtl.registry import MODELS, build_stock
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    try:
        build_stock(cfg.model.to_dict(), MODELS)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise UserError(f'{config}: its model cannot be built: '
                        f'{text[:300]}') from None


def _train_len(cfg: Config) -> int:
    from mmengine.registry import init_default_scope

    from branched_mtl.registry import DATASETS, build_stock
    init_default_scope(cfg.get('default_scope', 'branched_mtl'))
    return len(build_stock(copy.deepcopy(cfg.train_dataloader.dataset),
                           DATASETS))


def plan_sweep(cfg: Config,
               work_dir: str,
               tasks: Union[None, str, Sequence[str]] = None,
               splits: Union[None, str, Sequence] = None,
               mode: str = 'per-pair',
               single_task_dir: Optional[str] = None,
               iters: Optional[int] = None,
               data_fraction: Optional[float] = None,
               probe_samples: int = 64,
               probe_seed: int = 0,
               validate: bool = False,
               early_stop: Optional[dict] = None,
               config: str = 'the config') -> SweepPlan:
    """Turn a multi-task config into the jobs of a recombination sweep.

    Args:
        cfg: The multi-task config (with any ``--cfg-options`` merged).
        work_dir: The sweep directory.
        tasks: Tasks to sweep (default: all of the config's).
        splits: Split locations (see :func:`parse_splits`; default all).
        mode: ``'per-pair'`` (one job per (target, source, split), as in
            the paper) or ``'shared-bottom'`` (one job per (source, split)
            training every target on one frozen bottom).
        single_task_dir: Folder with one finished single-task run per task
            (``<dir>/<task>/`` with ``last_checkpoint``); None trains them
            as stage 0 jobs.
        iters: Training iterations of the recombined runs (default: the
            config's schedule), the schedule scaled to fit.
        data_fraction: Fraction of the training set the recombined runs use.
        probe_samples: K, held-out samples of the AffinityHook.
        probe_seed: Seed of the K samples.
        validate: Keep the validation loop in recombined runs.
        early_stop: Stop recombined runs early: arguments of
            :class:`ProbeEarlyStoppingHook` (``patience``, ``interval``,
            ``min_delta``); its K samples are drawn from the probe set
            with another seed than the affinity's. None: full schedule.
        config: How to name the config in messages (its path).

    Returns:
        The plan.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    tasks = resolve_tasks_arg(tasks, cfg)
    bad = [t for t in tasks if not _SAFE_NAME.match(t)]
    if bad:
        raise ValueError(f'task names {bad} cannot name job folders')
    if len(tasks) < 2:
        raise ValueError(f'a sweep needs at least 2 tasks, got {tasks}')
    block_names = encoder_block_names(cfg)
    splits = parse_splits(splits, block_names)
    # the checks of tools/branch.py, before anything trains: every task
    # labelled (a single-task job would otherwise train on nothing), and a
    # probe that reads no test image nor training sample and holds K
    check_data_tasks(cfg, config_tasks(cfg), config)
    check_probe(cfg, config, probe_samples, '--probe-samples')
    _check_model(cfg, config)
    work_dir = osp.abspath(work_dir)
    probe = dict(dataset='val', num_samples=probe_samples, seed=probe_seed)
    # the tournament reads the recombined runs' losses, never their features
    rec_probe = dict(probe, save_features=False)

    jobs: List[Job] = []
    ckpt: Dict[str, str] = {}
    needs: Dict[str, str] = {}
    for task in tasks:
        st_cfg = single_task_config(cfg, task)
        if single_task_dir is not None:
            ckpt[task] = _check_checkpoint(
                st_cfg, osp.join(single_task_dir, task), task)
            continue
        job_dir = osp.join(work_dir, 'single_task', task)
        add_affinity_hook(st_cfg, **probe)
        st_cfg.work_dir = job_dir
        name = f'single_task/{task}'
        jobs.append(Job(name, 0, job_dir, st_cfg, info=dict(task=task)))
        # resolved through last_checkpoint when the recombined run starts
        ckpt[task] = job_dir
        needs[task] = name

    fraction_len = None
    if data_fraction is not None and data_fraction != 1:
        if not 0 < data_fraction <= 1:
            raise ValueError(f'data fraction must be in (0, 1], got '
                             f'{data_fraction}')
        fraction_len = _train_len(cfg)
        if round(data_fraction * fraction_len) < 1:
            raise UserError(
                f'--data-fraction {data_fraction:g} keeps no sample of the '
                f'{fraction_len} training samples (it would silently become '
                f'one); give at least {1 / fraction_len:.3g}')

    def finish(job_cfg: Config, job_dir: str) -> Config:
        if iters is not None:
            set_train_iters(job_cfg, iters)
        if fraction_len is not None:
            set_data_fraction(job_cfg, data_fraction, fraction_len)
        if not validate:
            disable_validation(job_cfg)
        if early_stop:
            add_early_stopping(
                job_cfg, **dict(dict(dataset=probe['dataset'],
                                     num_samples=probe_samples,
                                     seed=probe_seed + 1), **early_stop))
        ckpt = (job_cfg.get('default_hooks') or {}).get('checkpoint')
        if isinstance(ckpt, dict) and ckpt.get('type') in (
                'CheckpointHook', 'mmengine.CheckpointHook'):
            # only the probe losses of a recombined run are read: its
            # checkpoints serve resuming, none is needed at the end
            ckpt['type'] = 'InterimCheckpointHook'
        job_cfg.work_dir = job_dir
        return job_cfg

    for split in splits:
        for source in tasks:
            if mode == 'shared-bottom':
                name = f'shared__from_{source}__split{split}'
                job_dir = osp.join(work_dir, 'jobs', name)
                job_cfg = shared_bottom_config(
                    cfg, source, split, {t: ckpt[t] for t in tasks},
                    ckpt[source], probe=rec_probe)
                deps = tuple(needs[t] for t in tasks if t in needs)
                jobs.append(
                    Job(name, 1, job_dir, finish(job_cfg, job_dir), deps,
                        dict(target=None, source=source, split=split)))
                continue
            for target in tasks:
                name = f'{target}__from_{source}__split{split}'
                job_dir = osp.join(work_dir, 'jobs', name)
                job_cfg = recombined_config(cfg, target, source, split,
                                            ckpt[target], ckpt[source],
                                            probe=rec_probe)
                deps = tuple(needs[t] for t in dict.fromkeys(
                    (target, source)) if t in needs)
                jobs.append(
                    Job(name, 1, job_dir, finish(job_cfg, job_dir), deps,
                        dict(target=target, source=source, split=split)))
    return SweepPlan(work_dir, tasks, splits, block_names, mode, jobs,
                     None if single_task_dir is None else
                     osp.abspath(single_task_dir))


def describe_plan(plan: SweepPlan) -> str:
    """A listing of every job (for ``--dry-run``)."""
    lines = [
        f'{len(plan.jobs)} jobs in {plan.work_dir} (mode {plan.mode}, '
        f'{len(plan.tasks)} tasks {plan.tasks}, splits '
        + ', '.join(f'{s} ({plan.block_names[s - 1]})' for s in plan.splits)
        + ')'
    ]
    for job in plan.jobs:
        state = 'done' if job.is_done() else 'todo'
        lines.append(f'  stage {job.stage}  {state}  {job.name}  '
                     f'{job.config_path}')
    lines.append(f'{len(plan.stage(0))} single-task job(s), '
                 f'{len(plan.stage(1))} recombined job(s)')
    return '\n'.join(lines)


def load_plan_config(config: str,
                     cfg_options: Optional[dict] = None) -> Config:
    """Read the multi-task config and merge ``--cfg-options``.

    Args:
        config: Path of the multi-task config.
        cfg_options: Overrides, as from ``DictAction``.

    Returns:
        The config.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    config_tasks(cfg)
    return cfg


def read_json(path: str) -> Any:
    """A JSON record; one nested too deep is a ValueError, not a
    RecursionError that would stop the sweep."""
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except RecursionError:
            raise ValueError(f'{path}: nested too deep') from None
