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


# The tasks are related by construction (README, "SyntheticScenes"): these
# tests check each relation on rendered scenes.
def _scenes(n=6, size=(48, 96)):
    ds = SyntheticScenes(num_samples=n, img_size=size, seed=5)
    return [ds.render(i) for i in range(n)]


def test_normals_follow_from_depth():
    for scene in _scenes():
        depth, normals = scene['depth'], scene['normals']
        h, w = depth.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        f = float(scene['focal'])
        # back-project every pixel centre to its 3D point
        pts = np.stack([(xs + 0.5 - w / 2) / f * depth,
                        (ys + 0.5 - h / 2) / f * depth, depth], -1)
        dx = pts[1:-1, 2:] - pts[1:-1, :-2]
        dy = pts[2:, 1:-1] - pts[:-2, 1:-1]
        n = np.cross(dx, dy)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n *= -np.sign((n * pts[1:-1, 1:-1]).sum(-1, keepdims=True))
        # interior pixels: the 3x3 neighbourhood on one planar face (same
        # class, instance and normal), so central differences stay on it
        key = (scene['semseg'].astype(np.int64) * 100 +
               scene['instance_ids'])
        normal_key = np.round(normals, 3)
        same = np.ones((h - 2, w - 2), bool)
        for oy in (0, 1, 2):
            for ox in (0, 1, 2):
                same &= key[oy:oy + h - 2, ox:ox + w - 2] == key[1:-1, 1:-1]
                same &= (normal_key[oy:oy + h - 2, ox:ox + w - 2] ==
                         normal_key[1:-1, 1:-1]).all(-1)
        assert same.mean() > 0.5
        cos = (n * normals[1:-1, 1:-1]).sum(-1)[same]
        # planar faces (floor, wall, boxes, panels) agree to a fraction of
        # a degree
        assert np.median(np.degrees(np.arccos(np.clip(cos, -1, 1)))) < 1.0
        assert (cos > 0.99).mean() > 0.95


def test_edges_are_segment_and_depth_discontinuities():
    for scene in _scenes():
        edges = scene['edges'].astype(bool)
        depth = scene['depth']
        key = scene['semseg'].astype(np.int64) * 100 + scene['instance_ids']
        assert edges.any()
        # every edge pixel has a 4-neighbour on another segment that lies
        # at least 5 % deeper (it is the near side of an occlusion)
        pad_d = np.pad(depth, 1, constant_values=np.nan)
        pad_k = np.pad(key, 1, constant_values=-1)
        h, w = depth.shape
        occludes = np.zeros_like(edges)
        for oy, ox in ((0, 1), (2, 1), (1, 0), (1, 2)):
            nd = pad_d[oy:oy + h, ox:ox + w]
            nk = pad_k[oy:oy + h, ox:ox + w]
            with np.errstate(invalid='ignore'):
                occludes |= (nk != key) & (nd > 1.05 * depth)
        assert occludes[edges].all()
        # and segment boundaries without a depth jump (the floor meeting
        # the wall) are not edges
        wall_floor = np.zeros_like(edges)
        wall_floor[:-1] = ((key[:-1] == 0) & (key[1:] == 100) &
                           (np.abs(depth[:-1] - depth[1:]) <
                            0.01 * depth[1:]))
        assert not (edges & wall_floor).any()


def test_offsets_follow_from_the_instances():
    for scene in _scenes():
        ids, off = scene['instance_ids'], scene['offsets']
        ys, xs = np.mgrid[0:ids.shape[0], 0:ids.shape[1]]
        for k in np.unique(ids[ids > 0]):
            on = ids == k
            # every pixel of an instance points at the same centre, its
            # pixels' mean position
            cx, cy = xs[on] + off[on, 0], ys[on] + off[on, 1]
            np.testing.assert_allclose(cx, xs[on].mean(), atol=1e-3)
            np.testing.assert_allclose(cy, ys[on].mean(), atol=1e-3)
        assert np.isnan(off[ids == 0]).all()
        # objects are the classes sphere, box, panel
        assert (scene['semseg'][ids > 0] >= 2).all()
