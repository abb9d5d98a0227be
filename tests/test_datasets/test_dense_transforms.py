import math

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmpretrain.structures import MultiTaskDataSample
from mmseg.datasets.transforms import RandomCrop
from mmseg.structures import SegDataSample

from branched_mtl.datasets.transforms import (DenseRandomFlip, DenseResize,
                                              PackDenseTaskInputs,
                                              add_dense_field)
from branched_mtl.models.data_preprocessors import DenseDataPreprocessor


def results_2x3():
    """A 2x3 image whose targets encode their own pixel positions."""
    r = dict(img=np.arange(18, dtype=np.uint8).reshape(2, 3, 3),
             img_shape=(2, 3), seg_fields=[], img_path='x.png')
    r['gt_seg_map'] = np.array([[0, 1, 2], [3, 4, 5]], np.uint8)
    r['seg_fields'].append('gt_seg_map')
    add_dense_field(r, 'gt_depth_map', np.array([[1., 2, 3], [4, 5, 6]],
                                                np.float32))
    normals = np.zeros((2, 3, 3), np.float32)
    normals[..., 0] = [[0.6, 0, -0.6], [0.6, 0, -0.6]]
    normals[..., 1] = 0.8
    add_dense_field(r, 'gt_normal_map', normals, normal=True)
    offsets = np.array([[[1, 0], [0, 0], [-1, 0]],
                        [[1, -1], [0, -1], [np.nan, np.nan]]], np.float32)
    add_dense_field(r, 'gt_offset_map', offsets, vector=True, offset=True)
    return r


def test_horizontal_flip_moves_targets_and_negates_x():
    r = DenseRandomFlip(prob=1.0, direction='horizontal')(results_2x3())
    np.testing.assert_array_equal(r['gt_seg_map'], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(r['gt_depth_map'], [[3, 2, 1], [6, 5, 4]])
    # pixel (0, 0) now holds old (0, 2): normal x was -0.6, negated
    np.testing.assert_allclose(r['gt_normal_map'][0, 0], [0.6, 0.8, 0])
    np.testing.assert_allclose(r['gt_normal_map'][..., 1], 0.8)
    np.testing.assert_allclose(r['gt_offset_map'][0, :, 0], [1, 0, -1])
    assert np.isnan(r['gt_offset_map'][1, 0]).all()
    np.testing.assert_allclose(r['gt_offset_map'][1, 2], [-1, -1])


def test_vertical_flip_negates_y():
    r = DenseRandomFlip(prob=1.0, direction='vertical')(results_2x3())
    np.testing.assert_array_equal(r['gt_seg_map'], [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_allclose(r['gt_normal_map'][..., 1], -0.8)
    np.testing.assert_allclose(r['gt_offset_map'][0, 0], [1, 1])


def test_crop_cuts_every_target_the_same_way():
    np.random.seed(0)
    r = results_2x3()
    r = RandomCrop(crop_size=(1, 2))(r)
    y, x = np.argwhere(results_2x3()['gt_seg_map'] == r['gt_seg_map'][0, 0])[0]
    np.testing.assert_array_equal(r['gt_depth_map'],
                                  results_2x3()['gt_depth_map'][y:y + 1,
                                                                x:x + 2])
    assert r['gt_normal_map'].shape == (1, 2, 3)
    assert r['gt_offset_map'].shape == (1, 2, 2)


def test_resize_uses_nearest_and_scales_offsets():
    r = DenseResize(scale=(6, 4), keep_ratio=False)(results_2x3())  # (w, h)
    assert r['img'].shape[:2] == (4, 6)
    np.testing.assert_array_equal(r['gt_seg_map'][::2, ::2],
                                  [[0, 1, 2], [3, 4, 5]])
    assert set(np.unique(r['gt_depth_map'])) <= {1, 2, 3, 4, 5, 6}
    # x doubled (3 -> 6 px), y doubled (2 -> 4 px)
    np.testing.assert_allclose(r['gt_offset_map'][0, 0], [2, 0])
    np.testing.assert_allclose(r['gt_offset_map'][2, 0], [2, -2])
    # normals are directions: an isotropic resize keeps in-plane ones (z = 0)
    # (tilts by anisotropic resizes: test_normal_transforms.py)
    np.testing.assert_allclose(r['gt_normal_map'][0, 0], [0.6, 0.8, 0],
                               atol=1e-6)


def pack(r, **kwargs):
    fields = dict(semseg='gt_seg_map', depth='gt_depth_map',
                  normals='gt_normal_map', instance='gt_offset_map')
    return PackDenseTaskInputs(task_fields=fields, **kwargs)(r)


def test_pack_builds_one_sample_per_task():
    out = pack(results_2x3(), num_classes=dict(semseg=6))
    s = out['data_samples']
    assert isinstance(s, MultiTaskDataSample) and out['inputs'].shape == (
        3, 2, 3)
    assert isinstance(s.semseg, SegDataSample)
    assert s.semseg.gt_sem_seg.data.dtype == torch.int64
    assert s.normals.gt_normal_map.data.shape == (3, 2, 3)
    assert s.instance.gt_offset_map.data.shape == (2, 2, 3)
    assert s.depth.metainfo['img_path'] == 'x.png'


@pytest.mark.parametrize('key,value,match', [
    ('gt_seg_map', np.full((2, 3), 9, np.uint8), 'out of range'),
    ('gt_seg_map', np.zeros((2, 3), np.float32), 'integer'),
    ('gt_depth_map', np.zeros((3, 3), np.float32), 'image is'),
    ('gt_normal_map', np.zeros((2, 3, 2), np.float32), r'\(H, W, 3\)'),
    ('gt_depth_map', np.zeros((2, 3), np.int32), 'floating'),
])
def test_pack_rejects_bad_targets_naming_the_sample(key, value, match):
    r = results_2x3()
    r[key] = value
    with pytest.raises((ValueError, TypeError), match=match) as err:
        pack(r, num_classes=dict(semseg=6))
    assert 'x.png' in str(err.value)


def test_preprocessor_pads_every_dense_target():
    small = pack(results_2x3())
    big = results_2x3()
    for k in ('img', 'gt_seg_map', 'gt_depth_map', 'gt_normal_map',
              'gt_offset_map'):
        big[k] = np.concatenate([big[k], big[k]], axis=0)
    big = pack(big)
    pre = DenseDataPreprocessor(pad_size_divisor=4)
    data = pre(dict(inputs=[small['inputs'], big['inputs']],
                    data_samples=[small['data_samples'],
                                  big['data_samples']]), training=True)
    assert data['inputs'].shape == (2, 3, 4, 4)
    s = data['data_samples'][0]
    assert s.metainfo['pad_shape'] == (4, 4)
    seg = s.semseg.gt_sem_seg.data
    assert seg.shape == (1, 4, 4) and (seg[:, 2:] == 255).all()
    assert (seg[:, :, 3:] == 255).all()
    assert (s.depth.gt_depth_map.data[:, 2:] == 0).all()
    assert (s.normals.gt_normal_map.data[:, :, 3:] == 0).all()
    assert torch.isnan(s.instance.gt_offset_map.data[:, 2:]).all()
    # at test time targets keep their size (predictions are cropped)
    data = pre(dict(inputs=[small['inputs']],
                    data_samples=[pack(results_2x3())['data_samples']]),
               training=False)
    assert data['data_samples'][0].semseg.gt_sem_seg.shape == (2, 3)
