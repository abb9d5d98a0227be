"""Each real data set loads a tiny fake copy of its official layout."""
import json
import os
import os.path as osp
import shutil

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from branched_mtl.datasets import CelebA, CityscapesMultiTask, NYUv2MultiTask
from branched_mtl.datasets.celeba import CELEBA_ATTRIBUTES

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def pipeline_of(config: str, which: str = 'train_pipeline'):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets',
                                   config))
    return cfg[which]


def write(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert mmcv.imwrite(arr, path)


def fake_cityscapes(root, split='val', h=16, w=32):
    stem = 'aachen/aachen_000000_000019'
    write(f'{root}/leftImg8bit/{split}/{stem}_leftImg8bit.png',
          np.full((h, w, 3), 100, np.uint8))
    ids = np.full((h, w), 7, np.uint8)  # road -> train id 0
    ids[:, w // 2:] = 26  # car -> 13
    ids[0, 0] = 3  # "out of roi" -> ignored
    write(f'{root}/gtFine/{split}/{stem}_gtFine_labelIds.png', ids)
    inst = np.zeros((h, w), np.uint16)
    inst[4:8, w // 2:w // 2 + 4] = 26001
    write(f'{root}/gtFine/{split}/{stem}_gtFine_instanceIds.png', inst)
    disp = np.full((h, w), 256 * 2 + 1, np.uint16)  # 2 px disparity
    disp[0] = 0  # invalid
    write(f'{root}/disparity/{split}/{stem}_disparity.png', disp)
    os.makedirs(f'{root}/camera/{split}/aachen')
    with open(f'{root}/camera/{split}/{stem}_camera.json', 'w') as f:
        json.dump(dict(extrinsic=dict(baseline=0.2),
                       intrinsic=dict(fx=1000.0)), f)
    return stem


def test_cityscapes_fake_layout(tmp_path):
    root = str(tmp_path)
    stem = fake_cityscapes(root)
    pipeline = pipeline_of('cityscapes.py', 'test_pipeline')
    pipeline[2]['scale'] = (64, 32)  # 2x up: offsets double
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = CityscapesMultiTask(data_root=root, split='val',
                                 pipeline=pipeline)
        sample = ds[0]['data_samples']
    assert len(ds) == 1 and ds.metainfo['classes'][13] == 'car'
    seg = sample.semseg.gt_sem_seg.data[0]
    assert seg.shape == (32, 64)
    assert seg[0, 0] == 255 and seg[5, 5] == 0 and seg[5, 40] == 13
    depth = sample.depth.gt_depth_map.data[0]
    assert float(depth[10, 10]) == pytest.approx(0.2 * 1000 / 2)
    assert (depth[:2] == 0).all()
    off = sample.instance.gt_offset_map.data
    # instance at x 16..19, y 4..7 (centre 17.5, 5.5) -> in 2x: 4x4 px in
    # original pixels = (1.5, 1.5) from the corner, doubled: (3, 3)
    np.testing.assert_allclose(off[:, 8, 32].numpy(), [3, 3])
    assert np.isnan(off[:, 0, 0].numpy()).all()
    # corrupt annotation: a clear error naming the file and the sample
    with open(f'{root}/gtFine/val/{stem}_gtFine_labelIds.png', 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(ValueError, match='labelIds.png .*corrupt'):
        ds[0]
    os.remove(f'{root}/disparity/val/{stem}_disparity.png')
    with pytest.raises(FileNotFoundError, match='disparity'):
        CityscapesMultiTask(data_root=root, split='val')


def test_cityscapes_rejects_out_of_range_ids(tmp_path):
    root = str(tmp_path)
    stem = fake_cityscapes(root)
    write(f'{root}/gtFine/val/{stem}_gtFine_labelIds.png',
          np.full((16, 32), 40, np.uint8))
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = CityscapesMultiTask(data_root=root, split='val', tasks=[
            'semseg'], pipeline=pipeline_of('cityscapes.py'))
        with pytest.raises(ValueError, match='label id 40'):
            ds[0]


def fake_nyu(root, h=12, w=16):
    for name in ('0001', '0002'):
        write(f'{root}/images/train/{name}.jpg',
              np.full((h, w, 3), 80, np.uint8))
        write(f'{root}/annotations/train/{name}.png',
              np.full((h, w), 2500, np.uint16))
        seg = np.full((h, w), 5, np.uint8)
        seg[0] = 0  # void
        write(f'{root}/segmentation/train/{name}.png', seg)
        normals = np.zeros((h, w, 3), np.uint8)
        normals[2:] = (128, 128, 255)  # RGB (0, 0, 1)
        write(f'{root}/normals/train/{name}.png', normals[..., ::-1])


def test_nyu_fake_layout(tmp_path):
    root = str(tmp_path)
    fake_nyu(root)
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = NYUv2MultiTask(data_root=root, split='train',
                            pipeline=pipeline_of('nyu.py', 'test_pipeline'))
        sample = ds[1]['data_samples']
    assert len(ds) == 2 and len(ds.metainfo['classes']) == 40
    seg = sample.semseg.gt_sem_seg.data[0]
    assert (seg[0] == 255).all() and (seg[1:] == 4).all()
    assert float(sample.depth.gt_depth_map.data.max()) == pytest.approx(2.5)
    n = sample.normals.gt_normal_map.data
    assert (n[:, :2] == 0).all()
    np.testing.assert_allclose(n[:, 5, 5].numpy(), [0, 0, 1], atol=0.01)
    os.remove(f'{root}/normals/train/0002.png')
    with pytest.raises(FileNotFoundError, match='0002.png'):
        NYUv2MultiTask(data_root=root, split='train')


@pytest.mark.parametrize('task, field', [
    ('semseg', 'gt_sem_seg'), ('depth', 'gt_depth_map'),
    ('normals', 'gt_normal_map')])
def test_nyu_single_task_with_the_multi_task_pipeline(tmp_path, task, field):
    # a single-task model of the main job keeps the multi-task pipeline;
    # its data set lists only its own task's files
    root = str(tmp_path)
    fake_nyu(root)
    for other in ('segmentation', 'annotations', 'normals'):
        if {'semseg': 'segmentation', 'depth': 'annotations',
                'normals': 'normals'}[task] != other:
            shutil.rmtree(f'{root}/{other}')
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = NYUv2MultiTask(data_root=root, split='train', tasks=[task],
                            pipeline=pipeline_of('nyu.py', 'train_pipeline'))
        sample = ds[0]['data_samples']
    assert list(sample.keys()) == [task]
    assert getattr(sample, task).get(field) is not None


def fake_celeba(root, bad_line=None):
    os.makedirs(f'{root}/img_align_celeba')
    names = ['000001.jpg', '000002.jpg', '000003.jpg']
    for n in names:
        write(f'{root}/img_align_celeba/{n}', np.zeros((8, 8, 3), np.uint8))
    rows = [f'{len(names)}', ' '.join(CELEBA_ATTRIBUTES)]
    for i, n in enumerate(names):
        vals = ['1' if (i + j) % 2 else '-1' for j in range(40)]
        rows.append(' '.join([n] + vals))
    if bad_line:
        rows[2] = bad_line
    with open(f'{root}/list_attr_celeba.txt', 'w') as f:
        f.write('\n'.join(rows) + '\n')
    with open(f'{root}/list_eval_partition.txt', 'w') as f:
        f.write('000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n')


def test_celeba_fake_layout(tmp_path):
    root = str(tmp_path)
    fake_celeba(root)
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = CelebA(data_root=root, split='train',
                    pipeline=pipeline_of('celeba.py', 'test_pipeline'))
        sample = ds[1]['data_samples']
    assert len(ds) == 2
    assert CelebA(data_root=root, split='test').get_data_info(0)[
        'img_path'].endswith('000003.jpg')
    assert int(sample.get(CELEBA_ATTRIBUTES[0]).gt_label) == 1
    assert int(sample.get(CELEBA_ATTRIBUTES[1]).gt_label) == 0
    small = CelebA(data_root=root, tasks=['Smiling', 'Male'])
    assert set(small.get_data_info(0)['gt_label']) == {'Smiling', 'Male'}


def test_celeba_bad_annotation_names_the_line(tmp_path):
    fake_celeba(str(tmp_path), bad_line='000001.jpg ' + '2 ' * 40)
    with pytest.raises(ValueError, match=r'line 3 \(000001.jpg\)'):
        CelebA(data_root=str(tmp_path))
