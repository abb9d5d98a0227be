"""PrecollatedDataset: the same losses and weights as the per-sample path,
batches carry their sample ids, random pipelines are refused."""
import copy
import os.path as osp

import pytest
import torch
from conftest import MULTIDIGITS, tiny_options
from mmengine.config import Config, DictAction

from branched_mtl.apis.runner import build_runner
from branched_mtl.datasets import PrecollatedDataset, precollate_loader
from branched_mtl.datasets.precollated import PackedSamples
from branched_mtl.datasets.utils import batch_sample_ids

CFG = osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py')


def tiny_cfg(work_dir, packed):
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg = Config.fromfile(CFG)
    # 6 iterations of 8 over 16 samples: three epochs
    cfg.merge_from_dict(parser.parse_args(
        ['--o'] + tiny_options(work_dir, iters=6, ckpt_interval=6,
                               samples=16)).o)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    # the Runner names its MessageHub after the experiment (config name and
    # start second): both runs in one second would share one loss history
    cfg.experiment_name = work_dir.replace('/', '_')
    if packed:
        precollate_loader(cfg.train_dataloader)
    return cfg


def test_same_losses_as_per_sample_path(tmp_path):
    runs = {}
    for packed in (False, True):
        cfg = tiny_cfg(str(tmp_path / str(packed)), packed)
        runner = build_runner(cfg)
        runner.train()
        assert isinstance(runner.train_dataloader.dataset,
                          PrecollatedDataset) == packed
        losses = runner.message_hub.get_scalar('train/loss')._log_history
        state = {k: v.clone() for k, v in runner.model.state_dict().items()}
        runs[packed] = (losses.copy(), state)
    assert len(runs[True][0]) == 6
    assert (runs[True][0] == runs[False][0]).all()
    assert all(torch.equal(v, runs[False][1][k])
               for k, v in runs[True][1].items())


def test_batches_and_refusals():
    cfg = Config.fromfile(CFG)
    source = copy.deepcopy(cfg.train_dataloader.dataset.dataset)
    source.num_samples = 24
    ds = PrecollatedDataset(source)
    batch = ds.__getitems__([5, 2, 7])
    per_sample = [ds[i] for i in (5, 2, 7)]
    assert torch.equal(batch['inputs'],
                       torch.stack([s['inputs'] for s in per_sample]))
    samples = batch['data_samples']
    assert isinstance(samples, PackedSamples) and len(samples) == 3
    assert batch_sample_ids(samples) == [5, 2, 7]
    assert [int(s.get('sum').gt_label) for s in samples] == [
        int(s['data_samples'].get('sum').gt_label) for s in per_sample]
    assert samples.to('cpu') is samples
    # a loader without the collate function is told what to add
    with pytest.raises(KeyError, match='precollated_collate'):
        batch[0]
    flip = copy.deepcopy(source)
    flip.pipeline = [dict(type='mmpretrain.RandomFlip', prob=0.5)] + list(
        flip.pipeline)
    with pytest.raises(ValueError, match='draws at random.*RandomFlip'):
        PrecollatedDataset(flip).full_init()
