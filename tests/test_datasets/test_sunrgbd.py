"""SUN RGB-D read from a tiny fake of its official layout and toolbox."""
import os
import os.path as osp

import h5py
import mmcv
import numpy as np
import pytest
import scipy.io
from mmengine.config import Config
from mmengine.registry import DefaultScope

from branched_mtl.datasets import SUNRGBDMultiTask, export_sunrgbd_labels
from branched_mtl.datasets.transforms import sunrgbd_depth_metres

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLBOX = '/n/fs/sun3d/data/SUNRGBD/'
# scene folder, image name, (H, W): sensors differ in size
SCENES = [('kv1/NYUdata/NYU0001', 'NYU0001', (12, 16)),
          ('kv2/kinect2data/000002_2014-05-26_rgbf000103-resize', '0000103',
           (10, 14)),
          ('realsense/lg/2014_10_24-16_09_18-1311000073', '0000011', (12, 16))]


def encode_depth(mm: np.ndarray) -> np.ndarray:
    """Millimetres as the SUN RGB-D pngs store them: rotated left 3 bits."""
    mm = mm.astype(np.uint16)
    return (mm << np.uint16(3)) | (mm >> np.uint16(13))


def scene_labels(k: int, hw) -> np.ndarray:
    ys, xs = np.mgrid[0:hw[0], 0:hw[1]]
    lab = (ys + 2 * xs + k) % 38  # 0 (void) .. 37
    return lab.astype(np.uint8)


def fake_sunrgbd(base: str, labels: bool = True) -> str:
    """The SUNRGBD folder (returned) and the toolbox beside it."""
    root = osp.join(base, 'SUNRGBD')
    for k, (scene, name, (h, w)) in enumerate(SCENES):
        folder = osp.join(root, scene)
        ys, xs = np.mgrid[0:h, 0:w]
        img = np.stack([ys * 10, xs * 10, np.full_like(xs, k)], -1)
        assert mmcv.imwrite(img.astype(np.uint8),
                            osp.join(folder, 'image', name + '.jpg'))
        mm = 1000 + 100 * ys + xs
        mm[0, 0] = 0  # no depth
        raw = encode_depth(mm)
        raw[0, 1] |= 1  # low bits set: the toolbox's rotation gives > 8 m
        assert mmcv.imwrite(raw, osp.join(folder, 'depth', name + '.png'))
        if labels:
            assert mmcv.imwrite(scene_labels(k, (h, w)),
                                osp.join(folder, 'label37', name + '.png'))
    split_dir = osp.join(base, 'SUNRGBDtoolbox', 'traintestSUNRGBD')
    os.makedirs(split_dir)
    scipy.io.savemat(osp.join(split_dir, 'allsplit.mat'), dict(
        alltrain=np.array([TOOLBOX + s for s, _, _ in SCENES[:2]],
                          dtype=object),
        alltest=np.array([TOOLBOX + SCENES[2][0] + '/'], dtype=object)))
    return root


SPLIT = '../SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat'


def test_depth_bit_rotation_is_the_toolbox_one():
    raw = np.array([0, encode_depth(np.array(2500))[()], 20001, 65535],
                   np.uint16)
    # 20001 = 2500 << 3 | 1: rotates to 2500 + 8192 mm -> clipped at 8 m
    np.testing.assert_allclose(sunrgbd_depth_metres(raw), [0, 2.5, 8, 8])
    np.testing.assert_allclose(sunrgbd_depth_metres(raw, None),
                               [0, 2.5, 10.692, 65.535], rtol=1e-6)


def test_sunrgbd_fake_layout(tmp_path):
    root = fake_sunrgbd(str(tmp_path))
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets',
                                   'sunrgbd.py'))
    pipeline = cfg.test_pipeline
    assert pipeline[2]['type'] == 'DenseResize'
    pipeline[2]['scale'] = (32, 24)  # (w, h): anisotropic for 10x14
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        train = SUNRGBDMultiTask(data_root=root, split_file=SPLIT,
                                 pipeline=pipeline)
        test = SUNRGBDMultiTask(data_root=root, split='test',
                                split_file=SPLIT, pipeline=pipeline)
        sample = train[0]['data_samples']
        raw = SUNRGBDMultiTask(data_root=root, split_file=SPLIT, pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadSUNRGBDAnnotations')])[1]
        # a single-task copy of the config keeps the pipeline
        depth_only = SUNRGBDMultiTask(data_root=root, split_file=SPLIT,
                                      tasks=['depth'], pipeline=pipeline)
        assert list(depth_only[0]['data_samples'].keys()) == ['depth']
    assert (len(train), len(test)) == (2, 1)
    assert cfg.train_dataloader.dataset.part == 'train'
    assert cfg.val_dataloader.dataset.part == 'probe'
    assert cfg.val_dataloader.dataset.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'test'
    assert len(train.metainfo['classes']) == 37
    assert test.get_data_info(0)['scene'] == SCENES[2][0]
    assert train.get_data_info(1)['img_path'].endswith('image/0000103.jpg')
    # labels: 0 -> 255, k -> k - 1; depth: the bit rotation in metres
    lab = scene_labels(1, (10, 14)).astype(int)
    np.testing.assert_array_equal(raw['gt_seg_map'],
                                  np.where(lab > 0, lab - 1, 255))
    ys, xs = np.mgrid[0:10, 0:14]
    want = (1000 + 100 * ys + xs) / 1000
    want[0, 0], want[0, 1] = 0, 8
    np.testing.assert_allclose(raw['gt_depth_map'], want, rtol=1e-6)
    assert raw['img'].shape == (10, 14, 3)
    # through the config's pipeline: one size for every sensor
    assert sample.semseg.gt_sem_seg.data.shape == (1, 24, 32)
    assert float(sample.depth.gt_depth_map.data.max()) <= 8.0
    assert set(np.unique(sample.semseg.gt_sem_seg.data.numpy())) <= set(
        range(37)) | {255}


def test_sunrgbd_text_split_and_errors(tmp_path):
    root = fake_sunrgbd(str(tmp_path))
    with open(osp.join(root, 'train.txt'), 'w') as f:
        f.write(f'{SCENES[2][0]}\n\n{TOOLBOX}{SCENES[0][0]}\n')
    ds = SUNRGBDMultiTask(data_root=root, split_file='train.txt')
    assert [ds.get_data_info(i)['scene'] for i in range(2)] == [
        SCENES[2][0], SCENES[0][0]]
    with pytest.raises(FileNotFoundError, match='nope.mat does not exist.*'
                       'allsplit.mat'):
        SUNRGBDMultiTask(data_root=root, split_file='nope.mat')
    with pytest.raises(FileNotFoundError, match='0000103.png.*semseg.*'
                       'export_sunrgbd_labels'):
        os.remove(osp.join(root, SCENES[1][0], 'label37', '0000103.png'))
        SUNRGBDMultiTask(data_root=root, split_file=SPLIT)
    # depth only: no labels needed
    assert len(SUNRGBDMultiTask(data_root=root, split_file=SPLIT,
                                tasks=['depth'])) == 2
    # a label png of another size than the image: caught before any resize
    assert mmcv.imwrite(np.ones((16, 12), np.uint8), osp.join(
        root, SCENES[0][0], 'label37', 'NYU0001.png'))
    with DefaultScope.overwrite_default_scope('branched_mtl'):
        ds = SUNRGBDMultiTask(data_root=root, split_file='train.txt',
                              pipeline=[dict(type='LoadImageFromFile'),
                                        dict(type='LoadSUNRGBDAnnotations')])
        with pytest.raises(ValueError, match=r'NYU0001.png of .* is '
                           r'\(16, 12\) but the image is \(12, 16\)'):
            ds[1]
    with pytest.raises(FileNotFoundError, match='normals.*bring your own'):
        SUNRGBDMultiTask(data_root=root, split_file=SPLIT,
                         tasks=['depth', 'normals'])
    os.remove(osp.join(root, SCENES[0][0], 'depth', 'NYU0001.png'))
    with pytest.raises(ValueError, match=r'NYU0001/depth must hold one '
                       r'.png file, found \[\]'):
        SUNRGBDMultiTask(data_root=root, split_file=SPLIT, tasks=['depth'])


def fake_toolbox_labels(base: str, transpose_bug: bool = False) -> None:
    """Metadata/SUNRGBDMeta.mat (v5) and SUNRGBD2Dseg.mat (v7.3, HDF5)."""
    meta_dir = osp.join(base, 'SUNRGBDtoolbox', 'Metadata')
    os.makedirs(meta_dir)
    meta = np.zeros((1, len(SCENES)), dtype=[('sequenceName', 'O'),
                                             ('rgbpath', 'O')])
    for k, (scene, name, _) in enumerate(SCENES):
        meta[0, k] = (scene, f'{TOOLBOX}{scene}/image/{name}.jpg')
    scipy.io.savemat(osp.join(meta_dir, 'SUNRGBDMeta.mat'),
                     dict(SUNRGBDMeta=meta))
    with h5py.File(osp.join(meta_dir, 'SUNRGBD2Dseg.mat'), 'w') as f:
        refs = []
        for k, (_, _, hw) in enumerate(SCENES):
            lab = scene_labels(k, hw).astype(float)
            ds = f.create_dataset(f'#refs#/{k}',
                                  data=lab if transpose_bug else lab.T)
            refs.append(ds.ref)
        group = f.create_group('SUNRGBD2Dseg')
        group.create_dataset('seglabel', data=np.array(refs)[:, None],
                             dtype=h5py.ref_dtype)


def test_export_sunrgbd_labels_from_the_toolbox(tmp_path):
    base = str(tmp_path)
    root = fake_sunrgbd(base, labels=False)
    fake_toolbox_labels(base)
    toolbox = osp.join(base, 'SUNRGBDtoolbox')
    assert export_sunrgbd_labels(root, toolbox) == 3
    assert export_sunrgbd_labels(root, toolbox) == 0  # already there
    for k, (scene, name, hw) in enumerate(SCENES):
        png = mmcv.imread(osp.join(root, scene, 'label37', name + '.png'),
                          flag='unchanged')
        np.testing.assert_array_equal(png, scene_labels(k, hw))
    assert len(SUNRGBDMultiTask(data_root=root, split_file=SPLIT)) == 2


def test_export_sunrgbd_labels_checks_the_size(tmp_path):
    base = str(tmp_path)
    root = fake_sunrgbd(base, labels=False)
    fake_toolbox_labels(base, transpose_bug=True)
    with pytest.raises(ValueError, match=r'NYU0001.jpg are \(16, 12\), the '
                       r'image .*\(12, 16\)'):
        export_sunrgbd_labels(root, osp.join(base, 'SUNRGBDtoolbox'))
