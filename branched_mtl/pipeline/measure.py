"""Measurements of the main job: size, FLOPs and throughput of a trained
model (for the report), FLOPs budgets, and TAG's lookahead affinity (one
all-shared training run with the TagHook)."""
import time
from typing import Any, Dict, Mapping, Optional

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config

from branched_mtl.registry import MODELS
from branched_mtl.tree.flops import dataset_input_shape
from branched_mtl.utils.console import quiet_logger

from .stages import fingerprint


def input_shape(cfg: Config) -> tuple:
    """(C, H, W) of the test images, read from one test sample; an error
    reading it is raised as it is (``tree.flops.config_input_shape`` turns
    it into a hint to give the shape)."""
    return dataset_input_shape(cfg.test_dataloader.dataset)


def measure_model(cfg: Config, shape: tuple, batch_size: int = 32,
                  repeats: int = 10) -> Dict[str, float]:
    """Parameters, FLOPs (mmengine's complexity analysis) and inference
    throughput on this machine's CPU of the model a config builds.

    None of the three depends on the weights, so no checkpoint is read: a
    report over records copied from another sitting (whose checkpoints
    are elsewhere) measures the same numbers.

    Args:
        cfg: The model's config.
        shape: (C, H, W) of an input image.
        batch_size: Images per timed forward.
        repeats: Timed forwards (after one warm-up).

    Returns:
        dict with ``params``, ``flops`` (per image) and ``images_per_s``.
    """
    # the report and the comparison measure the same models (one from the
    # job's config, one from the record's dumped copy): measured once
    key = fingerprint(cfg.model, shape, batch_size, repeats)
    if key in _MEASURED:
        return dict(_MEASURED[key])
    model = MODELS.build(cfg.model)
    model.eval()
    size = model_size(model, shape)
    x = torch.randn(batch_size, *shape)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        elapsed = time.perf_counter() - start
    _MEASURED[key] = dict(size, images_per_s=batch_size * repeats / elapsed)
    return dict(_MEASURED[key])


# measure_model's results by fingerprint of the model config, the shape
# and the timing (a dumped and re-read config gives the same fingerprint)
_MEASURED: Dict[str, Dict[str, float]] = {}


def model_size(model: torch.nn.Module, shape: tuple) -> Dict[str, float]:
    """Parameters and FLOPs per image (mmengine's complexity analysis) of a
    built model in eval mode; the FLOPs do not depend on its weights.

    Args:
        model: The model.
        shape: (C, H, W) of an input image.

    Returns:
        dict with ``params`` (int) and ``flops`` (one image).
    """
    # the FLOP counter warns about every op it skips (batch norm, pooling)
    with quiet_logger():
        info = get_model_complexity_info(
            model, inputs=(torch.zeros(1, *shape), ), show_table=False,
            show_arch=False)
    return dict(params=int(sum(p.numel() for p in model.parameters())),
                flops=float(info['flops']))


# ---------------------------------------------------------------- FLOPs budget
def check_flops_budget(text: Any, cfg: Config,
                       input_shape: Optional[tuple] = None) -> Any:
    """A FLOPs budget of the main job, checked before any training.

    Args:
        text: The ``--budget`` text (``3.5GFLOPs``).
        cfg: The multi-task config.
        input_shape: (C, H, W); default: the config's first test image.

    Returns:
        The :class:`~branched_mtl.tree.budget.Budget` (unit ``'flops'``).

    Raises:
        UserError: on a bad text, or a budget below the all-shared
            network's FLOPs (no tree fits).
    """
    from branched_mtl.tree import all_shared
    from branched_mtl.tree.budget import parse_size_budget
    from branched_mtl.models.describe import tree_flops_info
    from branched_mtl.tree.flops import (config_input_shape,
                                         count_tree_flops, format_flops)
    from branched_mtl.utils.errors import UserError, short_repr
    try:
        budget = parse_size_budget(text)
    except (ValueError, OverflowError) as e:
        raise UserError(f'--budget: {e}') from None
    try:
        shape = input_shape or config_input_shape(cfg)
    except ValueError as e:
        raise UserError(f'--budget {short_repr(text)}: {e}') from None
    info = tree_flops_info(cfg.model.to_dict(), shape)
    floor = count_tree_flops(
        all_shared(list(cfg.model.encoder.tasks), len(info['block_flops'])),
        info['block_flops'], info['head_flops'])
    if budget.value < floor:
        raise UserError(
            f'--budget {short_repr(text)} is {budget.value:,} FLOPs per '
            f'image, below the all-shared network ({floor:,}, '
            f'{format_flops(floor)} at {tuple(shape)}), the smallest tree: '
            'no tree fits')
    return budget


# ---------------------------------------------------------------- TAG
TAG_SETTINGS = ('iters', 'interval', 'splits')


def tag_settings(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """``branch.tag`` of the config, checked: ``iters`` (default: the
    config's schedule), ``interval`` (10, TAG's) and ``splits``
    (``'blocks'``)."""
    from branched_mtl.utils.errors import UserError
    tag = settings.get('tag') or {}
    if not isinstance(tag, Mapping):
        raise UserError(f'branch.tag must be a dict(iters=..., interval=...),'
                        f' got {tag!r}')
    unknown = sorted(set(tag) - set(TAG_SETTINGS))
    if unknown:
        raise UserError(f'branch.tag: unknown setting(s) {unknown}; known: '
                        f'{list(TAG_SETTINGS)}')
    out = dict(iters=tag.get('iters'), interval=tag.get('interval', 10),
               splits=tag.get('splits', 'blocks'))
    for key in ('iters', 'interval'):
        v = out[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                              or v < 1):
            raise UserError(f'branch.tag.{key} must be a whole number >= 1, '
                            f'got {v!r}')
    return out


def measure_tag(job: Any, path: str, fp: str) -> str:
    """Step 2 with TAG: one all-shared multi-task training run with the
    :class:`TagHook`, its lookahead affinity written to ``path``.

    The run is the job's all-shared network (same config, seed, probe
    selection and launcher), with the schedule of ``branch.tag.iters``
    when given; it resumes when killed. The affinity file's ``meta``
    records the run's wall time and the seconds the hook itself took.

    Args:
        job: The :class:`BranchJob` (single-task stages done).
        path: The job's ``affinity/affinity.json``.
        fp: The affinity stage's fingerprint (a run for other inputs is
            cleared, not resumed).

    Returns:
        ``path``.
    """
    import copy
    import os.path as osp
    import shutil

    from branched_mtl.affinity import load_affinity, save_affinity
    from branched_mtl.apis.configs import set_custom_hook
    from branched_mtl.apis.schedules import set_train_iters
    settings = tag_settings(job.settings)
    folder = job.folder('affinity', 'tag_run')
    if job.book.stale('affinity', fp) and osp.isdir(folder):
        job.log('  affinity: inputs changed, the TAG run starts again')
        shutil.rmtree(folder)
    cfg = job.with_tree(None)
    if settings['iters'] is not None:
        set_train_iters(cfg, settings['iters'])
    set_custom_hook(cfg, dict(type='TagHook',
                               interval=settings['interval'],
                               splits=settings['splits']))
    start = time.perf_counter()
    job.train('affinity_tag', copy.deepcopy(cfg), folder)
    wall = time.perf_counter() - start
    doc = load_affinity(osp.join(folder, 'tag', 'affinity.json'))
    meta = dict(doc['meta'], run_dir=folder,
                run_iters=int(cfg.train_cfg.max_iters),
                run_wall_seconds=wall, seed=job.seed)
    save_affinity(path, doc['tasks'], doc['blocks'], 'tag', doc['affinity'],
                  meta)
    job.log(f'  affinity: TAG run of {meta["run_iters"]} iterations, '
            f'{meta["measurements"]} lookahead measurements '
            f'({meta["seconds"]:.0f} s of {wall:.0f} s)')
    return path
