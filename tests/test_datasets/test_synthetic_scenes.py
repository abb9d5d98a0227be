import numpy as np
import pytest

from branched_mtl.datasets import SyntheticScenes
from branched_mtl.datasets.synthetic_scenes import instance_offsets


def test_instance_offsets_point_to_the_centroid():
    ids = np.array([[0, 1, 1], [0, 1, 2]])
    off = instance_offsets(ids)
    assert np.isnan(off[0, 0]).all()
    # instance 1 at (x, y) = (1, 0), (2, 0), (1, 1): centre (4/3, 1/3)
    np.testing.assert_allclose(off[0, 1], [1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(off[1, 2], [0, 0])


def test_scenes_are_deterministic_and_consistent():
    ds = SyntheticScenes(num_samples=2, img_size=(24, 48), seed=3)
    a, b = ds.get_data_info(1), SyntheticScenes(
        num_samples=2, img_size=(24, 48), seed=3).get_data_info(1)
    np.testing.assert_array_equal(a['img'], b['img'])
    assert not np.array_equal(a['img'], ds.get_data_info(0)['img'])
    assert a['img'].shape == (24, 48, 3) and a['img'].dtype == np.uint8
    assert (a['gt_depth_map'] > 0).all() and np.isfinite(a['gt_depth_map']).all()
    norms = np.linalg.norm(a['gt_normal_map'], axis=-1)
    np.testing.assert_allclose(norms, 1, atol=1e-4)
    assert set(np.unique(a['gt_seg_map'])) <= set(range(5))
    assert set(np.unique(a['gt_edge_map'])) <= {0, 1}
    on_object = a['gt_seg_map'] >= 2
    assert (np.isfinite(a['gt_offset_map']).all(-1) == on_object).all()
    assert 0 <= a['gt_label'] <= 4
    assert set(a['seg_fields']) == {'gt_seg_map', 'gt_depth_map',
                                    'gt_normal_map', 'gt_edge_map',
                                    'gt_offset_map'}
    assert a['vector_fields'] == ['gt_normal_map', 'gt_offset_map']


def test_same_scene_at_any_resolution(tmp_path):
    small = SyntheticScenes(num_samples=1, img_size=(32, 64)).render(0)
    big = SyntheticScenes(num_samples=1, img_size=(64, 128),
                          cache_dir=str(tmp_path)).get_data_info(0)
    # same classes at matching pixel centres in most places
    agree = (big['gt_seg_map'][1::2, 1::2] == small['semseg']).mean()
    assert agree > 0.9
    assert list(tmp_path.rglob('*.npz'))


def test_task_selection_and_bad_arguments():
    info = SyntheticScenes(num_samples=1, img_size=(16, 32),
                           tasks=['depth', 'scene']).get_data_info(0)
    assert 'gt_seg_map' not in info and 'gt_depth_map' in info
    assert info['task_fields'] == dict(depth='gt_depth_map',
                                       scene='gt_label')
    with pytest.raises(ValueError, match='unknown task'):
        SyntheticScenes(tasks=['depht'])
    with pytest.raises(ValueError, match='split'):
        SyntheticScenes(split='training')
