import os
import os.path as osp

import pytest

# keep the 2-core CI machine responsive when tests run torch: two OpenMP
# threads in one process. Under pytest-xdist every worker is a process of
# its own and gets one thread, or the workers oversubscribe the cores. The
# workers inherit the controller's environment, so the controller's default
# must not pass for the user's choice: it is marked, and a worker replaces
# a marked default (an OMP_NUM_THREADS set by the user is kept everywhere).
_OMP_DEFAULT_MARK = 'BRANCHED_MTL_OMP_DEFAULT'
if 'OMP_NUM_THREADS' not in os.environ:
    os.environ['OMP_NUM_THREADS'] = '2'
    os.environ[_OMP_DEFAULT_MARK] = '1'
if 'PYTEST_XDIST_WORKER' in os.environ and os.environ.get(_OMP_DEFAULT_MARK):
    os.environ['OMP_NUM_THREADS'] = '1'

import branched_mtl  # noqa: E402,F401  (compat first)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MULTIDIGITS = osp.join(ROOT, 'configs', 'multidigits')


# the long end-to-end and fault-injection runs: kept out of the default
# suite (CI's ten minutes); each property they check has a shorter test in
# it, or is listed in docs/reliability.md. BRANCHED_MTL_SLOW=1 runs them.
slow = pytest.mark.skipif(
    os.environ.get('BRANCHED_MTL_SLOW') != '1',
    reason='slow end-to-end run; BRANCHED_MTL_SLOW=1 runs it')


def one_thread_after_fork() -> None:
    """First call in a process forked from pytest, before any torch work.

    The parent has used OpenMP's thread pool; libgomp does not survive a
    fork (the child waits forever at a team barrier for threads it does
    not have: seen as tests timing out on CI). On one thread torch never
    enters an OpenMP team, as in PyTorch's own data loader workers.
    """
    import torch
    torch.set_num_threads(1)


def tiny_options(work_dir: str, iters: int = 4, ckpt_interval: int = 2,
                 samples: int = 32) -> list:
    """--cfg-options that shrink a MultiDigits config to a few seconds."""
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.logger.interval=1',
        # the probe split holds 16 of samples + 16 training pairs out: the
        # train part keeps `samples`; both parts must name the same source
        f'train_dataloader.dataset.dataset.num_samples={samples + 16}',
        'train_dataloader.dataset.num_samples=16',
        f'val_dataloader.dataset.dataset.num_samples={samples + 16}',
        'val_dataloader.dataset.num_samples=16',
        'train_dataloader.batch_size=8',
        'test_dataloader.dataset.num_samples=16',
        f'param_scheduler.0.end={iters}',
    ]


@pytest.fixture
def root() -> str:
    return ROOT


# The files whose tests take longest (one core, `--durations`: 245, 220,
# 113, 69, 66 and 48 s; the rest of the suite is about 5 CPU-minutes).
# `make test` hands whole files to its workers in collection order, so the
# longest go first: a worker that draws one of them late would run on
# alone while the others idle.
LONGEST_FIRST = (
    'tests/test_pipeline/test_branch.py',
    'tests/test_tools/test_compare_methods.py',
    'tests/test_reliability/test_compare_kill9.py',
    'tests/test_apis/test_sweep_worker.py',
    'tests/test_pipeline/test_oracle.py',
    'tests/test_pipeline/test_methods.py',
)


def pytest_collection_modifyitems(config, items):
    """Longest files first (a stable sort: order within a file stays)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split('::')[0],
                                         len(LONGEST_FIRST)))
