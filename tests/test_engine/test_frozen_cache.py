"""FrozenFeatureCacheHook: served frozen features are the computed ones, bit
for bit; changed inputs switch it off; the budget decides memory / disk /
nothing; a tiny sweep's affinity is the same with and without it."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from branched_mtl.engine.hooks.frozen_cache import (_TABLES,
                                                    FrozenFeatureCacheHook)
from branched_mtl.registry import build_stock
from conftest import slow  # noqa: I100  (tests/conftest.py)

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'test_tools'))

TASKS = ['a', 'b']


def encoder(frozen: int):
    torch.manual_seed(0)
    enc = build_stock(dict(
        type='branched_mtl.BranchedEncoder',
        backbone=dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
                      stem_channels=8, out_indices=(1, 3)),
        tasks=TASKS, frozen_blocks=frozen,
        branches=[[TASKS] if b < frozen else [['a'], ['b']]
                  for b in range(5)]))
    enc.init_weights()
    for m in enc.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return enc.train()


def attach(enc, **kwargs):
    hook = FrozenFeatureCacheHook(**kwargs)
    hook.encoder, hook.capacity, hook.folder = enc, 12, kwargs.get(
        'cache_dir')
    hook.key = ('test', id(enc))
    enc.frozen_features = hook
    return hook


def epochs(enc, hook, data, order, change=None):
    """Forward the batches of ``order`` (lists of sample ids) with and
    without the cache; returns whether every output matched bit for bit."""
    same = True
    for ids in order:
        x = data[ids].clone()
        if change is not None and change[0] in ids:
            x[ids.index(change[0])] += change[1]
        hook.pending = list(ids)
        got = enc(x)
        per_block = enc._features(enc.forward_nodes(x, cached=False),
                                  enc.out_blocks)
        want = {t: tuple(per_block[b][t] for b in enc.out_blocks)
                for t in TASKS}
        same &= all(torch.equal(g, w) for t in TASKS
                    for g, w in zip(got[t], want[t]))
    return same


def shuffled(seed, n=12, batch=4, rounds=3):
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n).tolist() for _ in range(rounds)]
    return [p[i:i + batch] for p in perms for i in range(0, n, batch)]


# 2 frozen blocks by default; the first and the deepest split with
# BRANCHED_MTL_SLOW=1
@pytest.mark.parametrize('frozen', [pytest.param(1, marks=slow), 2,
                                    pytest.param(4, marks=slow)])
def test_served_features_equal_computed(frozen):
    _TABLES.clear()
    enc = encoder(frozen)
    hook = attach(enc)
    data = torch.randn(12, 3, 32, 32)
    with torch.no_grad():
        assert epochs(enc, hook, data, shuffled(frozen))
    # the first epoch computes, later ones are served (reshuffled batches)
    assert hook.computed == 3 and hook.served == 6
    assert hook.off_reason is None
    # gradients reach the unfrozen blocks as without the cache
    hook.pending = [0, 1, 2, 3]
    loss = sum(f[-1].sum() for f in enc(data[:4]).values())
    loss.backward()
    grads = [p.grad.clone() for p in enc.parameters() if p.requires_grad]
    enc.zero_grad()
    loss = sum(f[-1].sum() for f in enc(data[:4]).values())  # computed
    loss.backward()
    assert all(torch.equal(g, p.grad) for g, p in zip(
        grads, [p for p in enc.parameters() if p.requires_grad]))


def test_changed_input_switches_it_off():
    _TABLES.clear()
    enc = encoder(2)
    hook = attach(enc)
    data = torch.randn(12, 3, 32, 32)
    with torch.no_grad():
        assert epochs(enc, hook, data, shuffled(0, rounds=1))
        # sample 5 comes back with another input (a random augmentation)
        assert epochs(enc, hook, data, shuffled(1, rounds=2),
                      change=(5, 0.01))
    assert 'changed between epochs' in hook.off_reason
    assert not _TABLES and hook.table is None


def test_other_batch_size_is_computed():
    _TABLES.clear()
    enc = encoder(3)
    hook = attach(enc)
    data = torch.randn(12, 3, 32, 32)
    with torch.no_grad():
        assert epochs(enc, hook, data, shuffled(0, rounds=1))
        # rows computed at batch size 4 never serve a batch of 3
        assert epochs(enc, hook, data, [[0, 1, 2], [3, 4, 5]])
    assert hook.served == 0 and hook.computed == 5


def test_budget_memory_disk_or_nothing(tmp_path):
    _TABLES.clear()
    data = torch.randn(12, 3, 32, 32)
    # over the budget, with a folder: a file-backed table, removed at end
    enc = encoder(2)
    hook = attach(enc, memory_budget=0, cache_dir=str(tmp_path))
    with torch.no_grad():
        assert epochs(enc, hook, data, shuffled(2, rounds=2))
    assert hook.served == 3 and len(os.listdir(tmp_path)) == 1
    assert not _TABLES
    hook.after_train(None)
    assert os.listdir(tmp_path) == [] and enc.frozen_features is None
    # over the budget without a folder: computed as before
    enc = encoder(2)
    hook = attach(enc, memory_budget=1000, cache_dir=None)
    with torch.no_grad():
        assert epochs(enc, hook, data, shuffled(2, rounds=2))
    assert hook.served == 0 and 'over the budget' in hook.off_reason
    # within the budget: in memory, and kept for the next run of the process
    enc = encoder(2)
    hook = attach(enc, memory_budget=10**7)
    with torch.no_grad():
        epochs(enc, hook, data, shuffled(2, rounds=1))
    assert len(_TABLES) == 1 and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match='memory_budget'):
        FrozenFeatureCacheHook(memory_budget=-1)
    _TABLES.clear()


@slow
def test_tiny_sweep_same_affinity(tmp_path):
    """Shared-bottom jobs trained in this process, with the cache (the
    default) and without it: the same tournament affinity, bit for bit."""
    from test_sweep_recombination import single_task_runs, tiny_cfg

    from branched_mtl.affinity import load_affinity
    from branched_mtl.apis.sweep import collect_sweep, plan_sweep, write_jobs
    from branched_mtl.apis.sweep.worker import run_job
    st = single_task_runs(tmp_path / 'st', ['left', 'sum'])
    results = {}
    for name, cache in (('cached', {}), ('current', None)):
        # 12 iterations of 8 over 32 samples: every sample seen 3 times
        plan = plan_sweep(tiny_cfg(), str(tmp_path / name), tasks='left,sum',
                          splits='2,5', mode='shared-bottom',
                          single_task_dir=st, iters=12, probe_samples=6)
        for job in plan.jobs:
            for hook in job.cfg.custom_hooks:
                if hook['type'] == 'RecombinationHook':
                    hook['feature_cache'] = cache
        write_jobs(plan, launcher='none')
        for job in plan.jobs:
            assert run_job(job, 'test', resume=False) is None, open(
                job.log_path).read()[-3000:]
        results[name] = load_affinity(collect_sweep(plan))['affinity']
        logs = ''.join(open(j.log_path).read() for j in plan.jobs)
        if cache is not None:
            assert logs.count('batch(es) served from the table') == 4
            assert ' 0 batch(es) served' not in logs
    np.testing.assert_array_equal(results['cached'], results['current'])
    _TABLES.clear()
