"""NYUv2 read from a tiny fake of the official labeled .mat (HDF5)."""
import json
import multiprocessing
import os
import os.path as osp

import h5py
import mmcv
import numpy as np
import pytest
import scipy.io
from mmengine.config import Config
from mmengine.registry import DefaultScope

from branched_mtl.datasets import NYUv2MatMultiTask, ProbeSplit

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'nyu',
                  'resnet50-d8-psp_all-shared_nyu-mat-480x640.py')
N, H, W = 5, 12, 16


def image(i: int) -> np.ndarray:
    """(H, W, 3) RGB: R = row * 10, G = column * 10, B = image index, so a
    transposed or flipped read shows."""
    ys, xs = np.mgrid[0:H, 0:W]
    return np.stack([ys * 10, xs * 10, np.full_like(xs, i)], -1).astype(
        np.uint8)


def depth(i: int) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    return (1 + 0.1 * ys + 0.01 * xs + i).astype(np.float32)


def labels(i: int) -> np.ndarray:
    """Raw labels 0..894 along the rows and columns."""
    ys, xs = np.mgrid[0:H, 0:W]
    lab = (ys * 70 + xs * 3 + i) % 895
    lab[0, 0] = 0  # unlabeled
    lab[1, 1] = 894
    return lab.astype(np.uint16)


MAP40 = (np.arange(1, 895) % 40) + 1  # raw k -> 1..40
MAP13 = (np.arange(1, 41) % 13) + 1  # 40 -> 13


def write_mat(root: str, names: bool = False) -> str:
    """The labeled file as MATLAB v7.3 writes it: axes reversed."""
    path = osp.join(root, 'nyu_depth_v2_labeled.mat')
    with h5py.File(path, 'w') as f:
        f['images'] = np.stack([image(i).transpose(2, 1, 0)
                                for i in range(N)])  # (N, 3, W, H)
        f['depths'] = np.stack([depth(i).T for i in range(N)])  # (N, W, H)
        f['rawDepths'] = np.zeros((N, W, H), np.float32)
        f['labels'] = np.stack([labels(i).T for i in range(N)])
        if names:
            refs = []
            for k in range(1, 895):
                ds = f.create_dataset(f'refs/{k}', data=np.frombuffer(
                    f'name{k}'.encode(), np.uint8).astype(np.uint16)[:, None])
                refs.append(ds.ref)
            f.create_dataset('names', data=np.array([refs]),
                             dtype=h5py.ref_dtype)
    return path


def fake_nyu_mat(root: str, names: bool = False) -> None:
    write_mat(root, names)
    scipy.io.savemat(osp.join(root, 'splits.mat'), dict(
        trainNdxs=np.array([[1], [3], [5]]), testNdxs=np.array([[2], [4]])))
    scipy.io.savemat(osp.join(root, 'classMapping40.mat'),
                     dict(mapClass=MAP40[None].astype(float)))
    # the real one is a struct: the map first, then the names
    struct = np.zeros((1, 1), dtype=[('map', 'O'),
                                     ('labelName', 'O')])
    struct[0, 0] = (MAP13[None].astype(float),
                    np.array([f'c{k}' for k in range(13)], dtype=object))
    scipy.io.savemat(osp.join(root, 'class13Mapping.mat'),
                     dict(classMapping13=struct))
    os.makedirs(osp.join(root, 'normals'))
    for i in range(1, N + 1):
        normals = np.zeros((H, W, 3), np.uint8)
        normals[2:] = (128, 128, 255)
        assert mmcv.imwrite(normals[..., ::-1],
                            osp.join(root, 'normals', f'{i:04d}.png'))


def expected_labels(i: int, lut: np.ndarray, ignore: int = 255):
    raw = labels(i)
    return np.where(raw > 0, lut[raw] - 1, ignore)


def test_nyu_mat_matches_the_file(tmp_path):
    root = str(tmp_path)
    fake_nyu_mat(root)
    pipeline = Config.fromfile(CONFIG)['test_pipeline']
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        train = NYUv2MatMultiTask(data_root=root, split='train',
                                  normals_dir='normals', pipeline=pipeline)
        test = NYUv2MatMultiTask(data_root=root, split='test',
                                 normals_dir='normals', pipeline=pipeline)
        out = train[1]  # the file's third image
    assert (len(train), len(test)) == (3, 2)
    assert train.tasks == ('semseg', 'depth', 'normals')
    assert len(train.metainfo['classes']) == 40
    assert test.get_data_info(1)['mat_index'] == 3
    img = out['inputs'].numpy().transpose(1, 2, 0)  # BGR, as cv2 loads
    assert img.shape == (H, W, 3)
    np.testing.assert_array_equal(img[..., ::-1], image(2))
    sample = out['data_samples']
    seg = sample.semseg.gt_sem_seg.data[0].numpy()
    full = np.concatenate([[0], MAP40])
    np.testing.assert_array_equal(seg, expected_labels(2, full))
    assert seg[0, 0] == 255 and seg[1, 1] == MAP40[893] - 1
    np.testing.assert_allclose(sample.depth.gt_depth_map.data[0].numpy(),
                               depth(2))
    n = sample.normals.gt_normal_map.data
    np.testing.assert_allclose(n[:, 5, 5].numpy(), [0, 0, 1], atol=0.01)
    # the config: probe split of the training file, test split for the test
    cfg = Config.fromfile(CONFIG)
    probe = cfg.val_dataloader.dataset
    assert probe.type == 'ProbeSplit' and probe.part == 'probe'
    assert cfg.train_dataloader.dataset.part == 'train'
    assert {probe.dataset.split, cfg.test_dataloader.dataset.split} == {
        'train', 'test'}
    # a single-task copy of the config keeps its pipeline
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        for task in ('semseg', 'depth', 'normals'):
            single = NYUv2MatMultiTask(data_root=root, tasks=[task],
                                       normals_dir='normals',
                                       pipeline=pipeline)
            assert list(single[0]['data_samples'].keys()) == [task]


def test_nyu_mat_13_and_894_classes(tmp_path):
    root = str(tmp_path)
    fake_nyu_mat(root, names=True)
    pipe = [dict(type='LoadNYUv2Mat')]
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds13 = NYUv2MatMultiTask(data_root=root, num_classes=13,
                                 pipeline=pipe)
        seg = ds13[0]['gt_seg_map']
        assert ds13.metainfo['classes'][-1] == 'window'
        full = np.concatenate([[0], MAP13])[np.concatenate([[0], MAP40])]
        np.testing.assert_array_equal(seg, expected_labels(0, full))
        assert seg[seg != 255].max() == 12
        with pytest.raises(ValueError, match='ignore_index 255'):
            NYUv2MatMultiTask(data_root=root, num_classes=894)
        raw = NYUv2MatMultiTask(data_root=root, num_classes=894,
                                ignore_index=65535, pipeline=pipe)
        seg = raw[2]['gt_seg_map']  # image 5
    assert raw.metainfo['classes'][:2] == ('name1', 'name2')
    assert len(raw.metainfo['classes']) == 894
    assert seg.dtype == np.uint16
    np.testing.assert_array_equal(
        seg, expected_labels(4, np.arange(895), ignore=65535))


@pytest.mark.parametrize('ext', ['.npy', '.txt', '.json'])
def test_nyu_mat_mapping_formats(tmp_path, ext):
    root = str(tmp_path)
    fake_nyu_mat(root)
    mapping = np.concatenate([[0], MAP40])  # 895 entries, 0 first
    path = osp.join(root, 'map' + ext)
    if ext == '.npy':
        np.save(path, mapping)
    elif ext == '.txt':
        np.savetxt(path, mapping, fmt='%d')
    else:
        with open(path, 'w') as f:
            json.dump(mapping.tolist(), f)
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = NYUv2MatMultiTask(data_root=root, class_mapping='map' + ext,
                               pipeline=[dict(type='LoadNYUv2Mat')])
        np.testing.assert_array_equal(ds[0]['gt_seg_map'],
                                      expected_labels(0, mapping))


def test_nyu_mat_errors_name_the_file(tmp_path):
    root = str(tmp_path)
    fake_nyu_mat(root)
    os.remove(osp.join(root, 'classMapping40.mat'))
    with pytest.raises(FileNotFoundError,
                       match='classMapping40.mat does not exist.*894 -> 40.*'
                       'Gupta'):
        NYUv2MatMultiTask(data_root=root)
    # without semseg no mapping is needed
    assert len(NYUv2MatMultiTask(data_root=root, tasks=['depth'])) == 3
    with pytest.raises(FileNotFoundError, match='nope.mat does not exist.*'
                       '795 / 654'):
        NYUv2MatMultiTask(data_root=root, tasks=['depth'],
                          split_file='nope.mat')
    with pytest.raises(ValueError, match='num_classes=13.*class13Mapping'):
        np.save(osp.join(root, 'm.npy'), MAP40)
        NYUv2MatMultiTask(data_root=root, num_classes=13,
                          class_mapping='m.npy')
    with pytest.raises(ValueError, match='m2.npy has 10 entries'):
        np.save(osp.join(root, 'm2.npy'), np.ones(10))
        NYUv2MatMultiTask(data_root=root, class_mapping='m2.npy')
    with pytest.raises(ValueError, match='normals needs normals_dir'):
        NYUv2MatMultiTask(data_root=root, tasks=['depth', 'normals'])
    os.remove(osp.join(root, 'normals', '0003.png'))
    with pytest.raises(FileNotFoundError, match='0003.png of image 3'):
        NYUv2MatMultiTask(data_root=root, tasks=['depth'] + ['normals'],
                          normals_dir='normals')
    with h5py.File(osp.join(root, 'nyu_depth_v2_labeled.mat'), 'a') as f:
        del f['labels']
    with pytest.raises(ValueError, match=r"has no \['labels'\]"):
        NYUv2MatMultiTask(data_root=root, class_mapping='m.npy')


def _read_in_child(ds) -> int:
    return int(ds[0]['img'].sum())


def test_nyu_mat_probe_split_and_worker_fork(tmp_path):
    root = str(tmp_path)
    fake_nyu_mat(root)
    source = dict(type='NYUv2MatMultiTask', data_root=root, tasks=['depth'],
                  pipeline=[dict(type='LoadNYUv2Mat')])
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        train = ProbeSplit(source, part='train', num_samples=1)
        probe = ProbeSplit(source, part='probe', num_samples=1)
        assert len(train) == 2 and len(probe) == 1
        in_parent = int(train[0]['img'].sum())  # opens the file here
        # a forked data loader worker opens its own handle
        with multiprocessing.get_context('fork').Pool(1) as pool:
            assert pool.apply(_read_in_child, (train, )) == in_parent
