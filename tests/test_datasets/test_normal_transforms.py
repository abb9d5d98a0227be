"""Surface normals stay unit vectors and correct under resizes, crops, flips.

Convention (the project's, see SyntheticScenes): camera frame x right
(image columns), y down (image rows), z forward; normals point towards the
camera. A surface of depth ``Z = a x + b y`` (x, y in pixels) has the normal
``(a, b, -1) / |(a, b, -1)|``; stretching the image by ``(sx, sy)`` turns it
into ``Z = (a / sx) x + (b / sy) y``.
"""
import numpy as np
import pytest
from mmseg.datasets.transforms import RandomCrop

from branched_mtl.datasets import SyntheticScenes
from branched_mtl.datasets.transforms import (DenseRandomFlip, DenseResize,
                                              add_dense_field,
                                              stretch_normals)


def plane_normal(a: float, b: float) -> np.ndarray:
    n = np.array([a, b, -1.0])
    return n / np.linalg.norm(n)


def plane_results(a: float, b: float, h: int = 24, w: int = 32) -> dict:
    """A plane's depth (at pixel centres) and normals; the top-left 4x4
    block has no normal (zero vector). The image holds pixel positions."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    img = np.stack([ys - 0.5, xs - 0.5, np.zeros_like(xs)], -1)
    r = dict(img=img.astype(np.uint8), img_shape=(h, w), seg_fields=[])
    add_dense_field(r, 'gt_depth_map', (10 + a * xs + b * ys)
                    .astype(np.float32))
    normals = np.broadcast_to(plane_normal(a, b), (h, w, 3)).astype(
        np.float32).copy()
    normals[:4, :4] = 0
    add_dense_field(r, 'gt_normal_map', normals, normal=True)
    return r


def angle_deg(n: np.ndarray, ref: np.ndarray) -> np.ndarray:
    cos = np.clip((n * ref).sum(-1), -1, 1)
    return np.degrees(np.arccos(cos))


def valid(n: np.ndarray) -> np.ndarray:
    return np.abs(n).sum(-1) > 0


@pytest.mark.parametrize('a,b,scale', [
    (0.3, -0.2, (48, 12)),    # x 1.5, y 0.5
    (-0.5, 0.4, (16, 36)),    # x 0.5, y 1.5
    (1.2, 0.0, (96, 24)),     # x 3, y 1 (steep in x)
    (0.2, 0.7, (64, 48)),     # isotropic 2x
])
def test_anisotropic_resize_matches_the_resized_plane(a, b, scale):
    r = DenseResize(scale=scale, keep_ratio=False)(plane_results(a, b))
    n = r['gt_normal_map']
    new_h, new_w = n.shape[:2]
    assert (new_w, new_h) == scale
    sx, sy = new_w / 32, new_h / 24
    on = valid(n)
    assert 0 < on.sum() < on.size  # the no-normal block survives, as zeros
    assert (n[~on] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(n[on], axis=-1), 1, atol=1e-5)
    err = angle_deg(n[on], plane_normal(a / sx, b / sy))
    assert err.max() < 1.0
    # the resized depth (values kept, nearest) is that same plane: fit it
    # in the new pixel grid and compare its normal
    ys, xs = np.mgrid[0:new_h, 0:new_w] + 0.5
    design = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], 1)
    fa, fb, _ = np.linalg.lstsq(design, r['gt_depth_map'].ravel(),
                                rcond=None)[0]
    assert angle_deg(n[on], plane_normal(fa, fb)).max() < 1.0


def test_keep_ratio_resize_and_rescale_normals_off():
    before = plane_results(0.4, -0.3)['gt_normal_map'][10, 10]
    r = DenseResize(scale=(64, 64), keep_ratio=True)(plane_results(0.4, -0.3))
    assert r['gt_normal_map'].shape[:2] == (48, 64)  # isotropic 2x
    np.testing.assert_allclose(r['gt_normal_map'][10, 10],
                               plane_normal(0.2, -0.15), atol=1e-6)
    off = DenseResize(scale=(48, 12), keep_ratio=False,
                      rescale_normals=False)(plane_results(0.4, -0.3))
    np.testing.assert_allclose(off['gt_normal_map'][5, 20], before)


def test_crop_keeps_normals_and_flip_negates_x():
    np.random.seed(0)
    src = plane_results(0.3, 0.2)
    r = RandomCrop(crop_size=(10, 12))(plane_results(0.3, 0.2))
    y0, x0 = r['img'][0, 0, :2]
    np.testing.assert_array_equal(r['gt_normal_map'],
                                  src['gt_normal_map'][y0:y0 + 10,
                                                       x0:x0 + 12])
    # mirrored: Z = a (W - x) + b y, the plane of slope (-a, b)
    f = DenseRandomFlip(prob=1.0, direction='horizontal')(
        plane_results(0.3, 0.2))
    n = f['gt_normal_map']
    on = valid(n)
    assert not on[:4, -4:].any()  # the no-normal block moved right
    assert angle_deg(n[on], plane_normal(-0.3, 0.2)).max() < 0.05


def test_stretch_normals_keeps_zero_and_nan():
    n = np.array([[[0, 0, 0], [np.nan] * 3, [0.6, 0, -0.8]]], np.float32)
    out = stretch_normals(n, 2.0, 1.0)
    assert (out[0, 0] == 0).all() and np.isnan(out[0, 1]).all()
    # (0.6, 0, -0.8) is the plane a = 0.75; stretched 2x in x: a = 0.375
    np.testing.assert_allclose(out[0, 2], plane_normal(0.375, 0), atol=1e-6)


def test_normal_producers_mark_normal_fields():
    ds = SyntheticScenes(num_samples=1, img_size=(8, 8), tasks=['normals'])
    info = ds.get_data_info(0)
    assert info['normal_fields'] == ['gt_normal_map']
    assert 'gt_normal_map' in info['vector_fields']
