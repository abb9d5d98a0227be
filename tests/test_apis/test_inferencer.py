"""BranchedMTLInferencer on trained tiny checkpoints: every task's files, and
arrays equal to the model's own ``predict`` on the data set's samples."""
import json
import os.path as osp
import time

import mmcv
import numpy as np
import pytest
import torch
from conftest import MULTIDIGITS, ROOT, tiny_options
from mmengine.config import Config

from branched_mtl.apis.inference import (BranchedMTLInferencer,
                                         checkpoint_tree, init_model,
                                         plot_test_predictions)
from branched_mtl.apis.runner import load_config, train
from branched_mtl.registry import DATASETS
from branched_mtl.utils import UserError
from branched_mtl.visualization.predictions import task_array

DIGITS = osp.join(MULTIDIGITS, 'resnet18-thin_branched-example_multidigits.py')
SCENES = osp.join(ROOT, 'configs', 'synthetic_scenes',
                  'resnet18-narrow-d8-psp_all-shared_synthetic-scenes-'
                  '64x128.py')
SCENE_TASKS = ['semseg', 'depth', 'normals', 'edges', 'instance']
# layer4 split in two: the tree, not only the blocks, must reach inference
SCENE_TREE = [[SCENE_TASKS]] * 4 + [[['semseg', 'edges'],
                                     ['depth', 'normals', 'instance']]]


def _train(cfg: Config, work_dir: str) -> str:
    path = osp.join(work_dir, 'config.py')
    cfg.dump(path)
    run = load_config(path, osp.join(work_dir, 'run'))
    run.experiment_name = f'infer_{time.time_ns()}'
    runner = train(run)
    return osp.join(work_dir, 'run', f'iter_{runner.iter}.pth'), path


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    work = str(tmp_path_factory.mktemp('digits'))
    cfg = Config.fromfile(DIGITS)
    for item in tiny_options(work, iters=2, ckpt_interval=2):
        key, value = item.split('=', 1)  # every value is an int
        cfg.merge_from_dict({key: int(value)})
    return _train(cfg, work)


@pytest.fixture(scope='module')
def scenes_run(tmp_path_factory):
    work = str(tmp_path_factory.mktemp('scenes'))
    cfg = Config.fromfile(SCENES)
    cfg.model.encoder.branches = SCENE_TREE
    cfg.train_cfg.update(max_iters=2, val_interval=3)
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler[0].end = 2
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].update(batch_size=2, num_workers=0,
                         persistent_workers=False)
        cfg[name].dataset.num_samples = 4
    return _train(cfg, work)


def _samples(cfg_path: str, count: int):
    cfg = Config.fromfile(cfg_path)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return [dataset[i] for i in range(count)]


def _predict(model, sample):
    with torch.no_grad():
        return model.test_step(dict(inputs=[sample['inputs']],
                                    data_samples=[sample['data_samples']]))[0]


def test_scenes_files_and_predict(scenes_run, tmp_path):
    ckpt, cfg_path = scenes_run
    assert checkpoint_tree(torch.load(ckpt, weights_only=False)) == \
        SCENE_TREE
    samples = _samples(cfg_path, 2)
    images = tmp_path / 'images'
    for i, s in enumerate(samples):
        # PNG is lossless: the file holds the data set's own pixels (RGB)
        rgb = s['inputs'].permute(1, 2, 0).numpy()
        mmcv.imwrite(mmcv.rgb2bgr(rgb), str(images / f'scene{i}.png'))
    out = tmp_path / 'out'
    inferencer = BranchedMTLInferencer(cfg_path, ckpt, device='cpu')
    assert inferencer.img_size == (64, 128)
    result = inferencer(str(images), out_dir=str(out), batch_size=2)
    model = inferencer.model
    for i, s in enumerate(samples):
        pred = _predict(model, s)
        folder = out / f'scene{i}'
        summary = json.loads((folder / 'predictions.json').read_text())
        assert summary['input_shape'] == [64, 128]
        assert (folder / 'tasks.png').stat().st_size > 0
        for task in SCENE_TASKS:
            kind, expected = task_array(pred.get(task))
            got = np.load(folder / f'{task}.npy')
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(got, result['predictions'][i][task])
            assert summary['tasks'][task]['kind'] == kind
            assert (folder / f'{task}.png').stat().st_size > 0
    kinds = {t: summary['tasks'][t]['kind'] for t in SCENE_TASKS}
    assert kinds == dict(semseg='segmentation', depth='depth',
                         normals='normals', edges='edges',
                         instance='offsets')


def test_report_figure_prediction_beside_ground_truth(scenes_run, tmp_path):
    ckpt, cfg_path = scenes_run
    path = tmp_path / 'fig_predictions.png'
    found = plot_test_predictions(cfg_path, ckpt, str(path), num_images=2)
    assert path.stat().st_size > 0
    assert found['meta']['classes'][0] == 'wall'  # the palette's data set
    samples = _samples(cfg_path, 2)
    for row, sample in zip(found['rows'], samples):
        assert set(row['pred']) == set(row['gt']) == set(SCENE_TASKS)
        gt = sample['data_samples'].semseg.gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(row['gt']['semseg'][1], gt)
        assert row['pred']['semseg'][1].shape == gt.shape
        assert row['gt']['instance'][0] == 'offsets'


def test_digits_files_and_predict(digits_run, tmp_path):
    ckpt, cfg_path = digits_run
    samples = _samples(cfg_path, 2)
    listed = []
    for i, s in enumerate(samples):
        path = tmp_path / f'pair{i}.png'
        mmcv.imwrite(mmcv.rgb2bgr(s['inputs'].permute(1, 2, 0).numpy()),
                     str(path))
        listed.append(path.name)
    (tmp_path / 'list.txt').write_text('\n'.join(listed) + '\n')
    inferencer = BranchedMTLInferencer(cfg_path, ckpt, device='cpu')
    array = samples[0]['inputs'].permute(1, 2, 0).numpy()
    result = inferencer([str(tmp_path / 'list.txt'), array],
                        out_dir=str(tmp_path / 'out'), return_vis=True)
    assert len(result['predictions']) == 3
    assert result['visualization'][0].ndim == 3
    for i, s in enumerate(samples + samples[:1]):
        pred = _predict(inferencer.model, s)
        name = f'pair{i}' if i < 2 else 'array_00002'
        summary = json.loads(
            (tmp_path / 'out' / name / 'predictions.json').read_text())
        for task in inferencer.tasks:
            expected = pred.get(task).pred_score.numpy()
            got = np.load(tmp_path / 'out' / name / f'{task}.npy')
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            assert summary['tasks'][task]['label'] == int(expected.argmax())
            assert (tmp_path / 'out' / name / f'{task}.png').is_file()


def test_bad_inputs_name_what_is_wrong(digits_run, tmp_path):
    ckpt, cfg_path = digits_run
    inferencer = BranchedMTLInferencer(cfg_path, ckpt, device='cpu')
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(UserError, match=f'image {bad} cannot be read'):
        inferencer(str(bad))
    with pytest.raises(UserError, match='input .*missing.png does not exist'):
        inferencer(str(tmp_path / 'missing.png'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='holds no image'):
        inferencer(str(tmp_path / 'empty'))
    with pytest.raises(UserError, match='does not exist'):
        BranchedMTLInferencer(cfg_path, str(tmp_path / 'none.pth'))
    with pytest.raises(UserError, match='config file .* does not exist'):
        BranchedMTLInferencer(str(tmp_path / 'none.py'), ckpt)


def test_checkpoint_of_another_tree(digits_run, tmp_path):
    ckpt, cfg_path = digits_run
    cfg = Config.fromfile(cfg_path)
    # same number of copies per block, tasks grouped otherwise at layer3
    # and layer4: the weights would load, so the recorded tree must tell
    other = [list(p) for p in cfg.model.encoder.branches]
    other[3] = other[4] = [['left', 'right'], ['left_parity', 'right_parity'],
                           ['sum']]
    cfg.model.encoder.branches = other
    with pytest.raises(UserError, match=r'another tree \(.*layer3: \[left '
                       r'left_parity\].*layer3: \[left right\]'):
        init_model(cfg, ckpt)
    # a bare state dict records no tree: the copies per block tell
    state = torch.load(ckpt, weights_only=False)['state_dict']
    bare = str(tmp_path / 'bare.pth')
    torch.save(state, bare)
    shared = Config.fromfile(
        osp.join(MULTIDIGITS, 'resnet18-thin_all-shared_multidigits.py'))
    with pytest.raises(UserError, match='holds 2 copies of block layer2 '
                       'where the config.s model.encoder.branches'):
        init_model(shared, bare)
    # the bare one loads into its own tree
    init_model(cfg_path, bare)
