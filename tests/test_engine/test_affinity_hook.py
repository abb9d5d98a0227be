"""AffinityHook (probe files, DDP = 1 process) and RecombinationHook."""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import MULTIDIGITS, ROOT, tiny_options
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from branched_mtl.affinity import read_probe
from branched_mtl.apis import (add_affinity_hook, recombined_config,
                               single_task_config)
from branched_mtl.engine.hooks.affinity_hook import AffinityHook
from branched_mtl.engine.hooks.recombination_hook import (
    RecombinationHook, resolve_checkpoint)
from branched_mtl.registry import DATASETS, build_stock

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')
SPLITS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4']


def tiny(cfg, work_dir, **kwargs):
    """``cfg`` shrunk by conftest's tiny options, with ``work_dir``."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    opts = parser.parse_args(['--o'] + tiny_options(work_dir, **kwargs)).o
    cfg.merge_from_dict(opts)
    cfg.work_dir = str(work_dir)
    return cfg


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.2 + (
                    0.9 if name.endswith('running_var') else -0.1))


def single_task_checkpoint(work_dir, task, seed, cfg=None):
    """A single-task 'run': work dir with a checkpoint and last_checkpoint."""
    cfg = cfg or Config.fromfile(CFG)
    model = build_stock(single_task_config(cfg, task).model)
    randomise(model, seed)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'iter_4.pth')
    torch.save(dict(meta=dict(iter=4), state_dict=model.state_dict()), path)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(path)
    return path, model.state_dict()


@pytest.fixture(scope='module')
def cfg():
    init_default_scope('branched_mtl')
    return Config.fromfile(CFG)


# --------------------------------------------------------------- AffinityHook

def two_task_model(cfg):
    c = cfg.copy()
    c.model.encoder.tasks = ['left', 'sum']
    c.model.head.task_heads = {t: c.model.head.task_heads[t]
                               for t in ['left', 'sum']}
    c.model.head.loss_weights = dict(sum=2.0)
    model = build_stock(c.model)
    randomise(model, 0)
    return model


def test_probe_files_format(cfg, tmp_path):
    model = two_task_model(cfg)
    model.train()
    val = dict(cfg.val_dataloader.dataset, num_samples=40)
    runner = SimpleNamespace(model=model, work_dir=str(tmp_path),
                             cfg=Config(dict(val_dataloader=dict(
                                 dataset=val))))
    hook = AffinityHook(num_samples=9, batch_size=4, seed=3,
                        recombination=dict(target='sum', source='left',
                                           split=2))
    torch_rng, np_rng = torch.get_rng_state(), np.random.get_state()
    hook.after_train(runner)
    # train mode restored, global RNGs untouched
    assert model.training and model.encoder.nodes[0][0].training
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(),
                                                    np_rng))

    probe = tmp_path / 'affinity_probe'
    meta = json.loads((probe / 'meta.json').read_text())
    assert meta == dict(tasks=['left', 'sum'], blocks=SPLITS,
                        sample_indices=meta['sample_indices'],
                        recombination=dict(target='sum', source='left',
                                           split=2))
    idx = meta['sample_indices']
    assert len(idx) == 9 == len(set(idx)) and idx == sorted(idx)
    assert max(idx) < 40
    # the same K indices in every run with the same arguments
    assert AffinityHook(num_samples=9, seed=3).select_indices(40) == idx
    assert AffinityHook(num_samples=9, seed=4).select_indices(40) != idx
    losses = np.load(probe / 'losses.npy')
    assert losses.dtype == np.float32 and losses.shape == (2, 9)
    shapes = dict(stem=(16, 8, 16), layer1=(16, 8, 16), layer2=(32, 4, 8),
                  layer3=(64, 2, 4), layer4=(128, 1, 2))
    for task in ['left', 'sum']:
        for split in SPLITS:
            arr = np.load(probe / 'features' / task / f'{split}.npy')
            assert arr.dtype == np.float16
            assert arr.shape == (9, ) + shapes[split], (task, split)
    assert not list(probe.rglob('*.tmp'))
    run = read_probe(tmp_path)  # the collector accepts it
    assert run.recombined == [('sum', 'left', 2)]

    # losses are each sample's own loss (loss weight included); features
    # are the block outputs of the eval-mode model
    dataset = build_stock(val, DATASETS)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate([dataset[i] for i in idx]), False)
        logits = model(data['inputs'], mode='tensor')
        blocks = model.encoder.block_features(data['inputs'])
    for row, (task, weight) in enumerate([('left', 1.0), ('sum', 2.0)]):
        gt = torch.cat([s.get(task).gt_label for s in data['data_samples']])
        ref = weight * F.cross_entropy(logits[task], gt, reduction='none')
        np.testing.assert_allclose(losses[row], ref.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        np.load(probe / 'features' / 'sum' / 'layer2.npy').astype(np.float32),
        blocks[2]['sum'].numpy(), rtol=2e-3, atol=2e-3)


def test_probe_arguments():
    assert AffinityHook(sample_indices=[5, 1, 3]).select_indices(10) == [
        5, 1, 3]
    with pytest.raises(ValueError, match='out of range'):
        AffinityHook(sample_indices=[5, 12]).select_indices(10)
    with pytest.raises(ValueError, match='num_samples'):
        AffinityHook(num_samples=11).select_indices(10)
    with pytest.raises(ValueError, match='dataset'):
        AffinityHook(dataset='holdout')
    with pytest.raises(ValueError, match='recombination'):
        AffinityHook(recombination=dict(target='a', source='b'))
    with pytest.raises(ValueError, match='split'):
        AffinityHook(recombination=dict(target='a', source='b', split=0))


def test_probe_two_processes_equal_one(cfg, tmp_path):
    """dist_train.sh CONFIG 2 (gloo): rank slices gathered = 1 process."""
    ckpt, _ = single_task_checkpoint(str(tmp_path / 'st'), 'sum', 1)
    st = tiny(single_task_config(cfg, 'sum'), tmp_path / 'one', iters=1)
    add_affinity_hook(st, num_samples=13, batch_size=4, seed=0)
    st.train_cfg.max_iters = 0  # no training: both runs probe ckpt's model
    st.load_from = ckpt
    path = str(tmp_path / 'probe_cfg.py')
    st.dump(path)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               PYTHON=sys.executable, PORT=str(20000 + os.getpid() % 20000))
    proc = subprocess.Popen(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), path, '2',
         '--work-dir', str(tmp_path / 'two'), '--cfg-options',
         'env_cfg.dist_cfg.backend=gloo'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the 1-process run meanwhile, in this process
    Runner.from_cfg(Config.fromfile(path)).train()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert 'Distributed training: True' in out
    one, two = tmp_path / 'one' / 'affinity_probe', tmp_path / 'two' / \
        'affinity_probe'
    meta1 = json.loads((one / 'meta.json').read_text())
    assert meta1 == json.loads((two / 'meta.json').read_text())
    assert len(meta1['sample_indices']) == 13
    np.testing.assert_allclose(np.load(two / 'losses.npy'),
                               np.load(one / 'losses.npy'), rtol=1e-5)
    for split in SPLITS:
        f1, f2 = (np.load(d / 'features' / 'sum' / f'{split}.npy')
                  for d in (one, two))
        assert f1.shape == f2.shape and f1.shape[0] == 13
        np.testing.assert_allclose(f2.astype(np.float32),
                                   f1.astype(np.float32), atol=1e-2)


# ---------------------------------------------------------- RecombinationHook

def node_state(state, b, g=0):
    prefix = f'encoder.nodes.{b}.{g}.'
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


def test_recombined_run_loads_and_freezes(cfg, tmp_path):
    _, src = single_task_checkpoint(str(tmp_path / 'left'), 'left', 1)
    _, tgt = single_task_checkpoint(str(tmp_path / 'sum'), 'sum', 2)
    rc = recombined_config(cfg, 'sum', 'left', 2, str(tmp_path / 'sum'),
                           str(tmp_path / 'left'))
    rc = tiny(rc, tmp_path / 'rc', iters=3)

    # what the hook loads before training: bottom = source, top = target
    model = build_stock(rc.model)
    hook = RecombinationHook(**{k: v for k, v in rc.custom_hooks[0].items()
                                if k != 'type'})
    hook.load(model)
    state = model.state_dict()
    for b in range(5):
        ref = node_state(src if b < 2 else tgt, b)
        for k, v in node_state(state, b).items():
            assert torch.equal(v, ref[k]), (b, k)
    for k, v in tgt.items():
        if k.startswith('head.'):
            assert torch.equal(state[k], v), k

    runner = Runner.from_cfg(rc)
    runner.train()
    after = runner.model.state_dict()
    for b in range(2):  # frozen: weights and BN statistics unchanged
        for k, v in node_state(after, b).items():
            assert torch.equal(v, node_state(src, b)[k]), (b, k)
    for b in range(2, 5):  # retrained
        top = node_state(after, b)
        assert any(not torch.equal(v, node_state(tgt, b)[k])
                   for k, v in top.items() if v.is_floating_point()), b
    assert not torch.equal(after['head.task_heads.sum.fc.weight'],
                           tgt['head.task_heads.sum.fc.weight'])
    # resumed runs keep the resumed weights
    marker = SimpleNamespace(iter=2, model=None)
    hook.before_train(marker)  # would fail on model=None if it loaded


def test_recombination_errors(cfg, tmp_path):
    single_task_checkpoint(str(tmp_path / 'left'), 'left', 1)
    single_task_checkpoint(str(tmp_path / 'sum'), 'sum', 2)
    model = build_stock(
        recombined_config(cfg, 'sum', 'left', 2, 'x', 'y').model)

    def load(source, target, split=2, source_task='left'):
        RecombinationHook(str(source), {'sum': str(target)}, split,
                          source_task).load(model)

    load(tmp_path / 'left', tmp_path / 'sum')  # fine
    missing = tmp_path / 'nope' / 'iter_9.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load(missing, tmp_path / 'sum')
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='last_checkpoint'):
        load(tmp_path / 'left', tmp_path / 'empty')
    # no last_checkpoint: the latest numbered checkpoint
    for n in (2, 10):
        (tmp_path / 'empty' / f'iter_{n}.pth').write_bytes(b'')
    assert resolve_checkpoint(str(tmp_path / 'empty')).endswith('iter_10.pth')
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='corrupt.pth'):
        load(corrupt, tmp_path / 'sum')
    # swapped paths: the source checkpoint holds another task's head
    with pytest.raises(ValueError, match="expected the single-task model "
                       "of 'left'"):
        load(tmp_path / 'sum', tmp_path / 'sum')
    with pytest.raises(ValueError, match="expected the single-task model "
                       "of 'sum'"):
        load(tmp_path / 'left', tmp_path / 'left')
    # a checkpoint of another architecture: no silent partial load
    wide = Config.fromfile(CFG)
    wide.model.encoder.backbone.base_channels = 8
    wide.model.encoder.backbone.stem_channels = 8
    wide.model.head.task_heads.sum.in_channels = 64
    single_task_checkpoint(str(tmp_path / 'wide'), 'sum', 3, wide)
    with pytest.raises(ValueError, match='shape mismatch'):
        load(tmp_path / 'left', tmp_path / 'wide')
    with pytest.raises(ValueError, match='frozen_blocks=3'):
        load(tmp_path / 'left', tmp_path / 'sum', split=3)
    with pytest.raises(ValueError, match="target_checkpoints name tasks"):
        RecombinationHook(str(tmp_path / 'left'),
                          {'left': str(tmp_path / 'left')}, 2).load(model)


def test_recombined_sweep_jobs_skip_features(tmp_path):
    """The tournament reads only losses: the sweep's recombined jobs write
    no features (single-task jobs still do, for RSA)."""
    from mmengine.config import Config

    from branched_mtl.apis.sweep import plan_sweep
    cfg = Config.fromfile(osp.join(
        MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py'))
    plan = plan_sweep(cfg, str(tmp_path), tasks='left,sum', splits='2',
                      mode='shared-bottom')
    hooks = {j.name: next(h for h in j.cfg.custom_hooks
                          if h['type'] == 'AffinityHook') for j in plan.jobs}
    assert hooks['single_task/left'].get('save_features', True) is True
    assert hooks['shared__from_left__split2']['save_features'] is False
