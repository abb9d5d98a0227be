"""SyntheticScenes: procedurally rendered scenes with dense ground truth.

A pinhole camera looks at a floor and a back wall; a few objects (spheres,
boxes, tilted panels) stand on the floor at random depths and occlude each
other. Every pixel is ray-cast, so depth, surface normals, semantic class,
instance and occlusion edges are exact; the image is Lambertian shading of
the normals under a random light times procedural textures (a checker floor,
a striped noisy wall, noisy object colours) plus sensor noise.

Everything is in camera coordinates: x right, y down, z forward (metres);
normals point towards the camera. Scenes depend only on
``(seed, split, index)``, never on the resolution, so any ``img_size``
renders the same scene.
"""
import hashlib
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset

from branched_mtl.registry import DATASETS
from .utils import select_tasks
from .transforms.dense_transforms import add_dense_field

SPLITS = ('train', 'val', 'test')
CLASSES = ('wall', 'floor', 'sphere', 'box', 'panel')
# task -> key of the target in the pipeline's results
TASK_FIELDS = dict(
    semseg='gt_seg_map',
    depth='gt_depth_map',
    normals='gt_normal_map',
    edges='gt_edge_map',
    instance='gt_offset_map',
    scene='gt_label',
)
CAMERA_HEIGHT = 1.5


def instance_offsets(instance_ids: np.ndarray) -> np.ndarray:
    """Offsets ``(dx, dy)`` from every pixel to its instance's centre.

    The centre is the mean position of the instance's pixels (pixel centres
    at integer coordinates); pixels on no instance (id <= 0) are NaN. Shared
    with the Cityscapes loader.

    Args:
        instance_ids: ``(H, W)`` integer map, > 0 on instances.

    Returns:
        ``(H, W, 2)`` float32 offsets in pixels.
    """
    h, w = instance_ids.shape
    out = np.full((h, w, 2), np.nan, np.float32)
    ids = instance_ids.ravel()
    on = ids > 0
    if not on.any():
        return out
    ys, xs = np.divmod(np.flatnonzero(on), w)
    uniq, inverse = np.unique(ids[on], return_inverse=True)
    count = np.bincount(inverse).astype(np.float64)
    cx = np.bincount(inverse, xs) / count
    cy = np.bincount(inverse, ys) / count
    out[ys, xs, 0] = cx[inverse] - xs
    out[ys, xs, 1] = cy[inverse] - ys
    return out


class _Canvas:
    """Z-buffer of one scene: nearest surface per pixel and its attributes."""

    def __init__(self, h: int, w: int, focal: float) -> None:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.u = (xs + 0.5 - w / 2) / focal  # ray direction (u, v, 1)
        self.v = (ys + 0.5 - h / 2) / focal
        self.z = np.full((h, w), np.inf, np.float32)
        self.normal = np.zeros((h, w, 3), np.float32)
        self.albedo = np.zeros((h, w, 3), np.float32)
        self.cls = np.zeros((h, w), np.uint8)
        self.surface = np.zeros((h, w), np.int32)  # 0 wall, 1 floor, 2+ obj
        self.instance = np.zeros((h, w), np.int32)

    def draw(self, z: np.ndarray, hit: np.ndarray, normal, albedo,
             cls: int, surface: int, instance: int) -> None:
        near = hit & (z < self.z)
        if not near.any():
            return
        self.z[near] = z[near]
        normal = np.broadcast_to(normal, self.normal.shape)
        albedo = np.broadcast_to(albedo, self.albedo.shape)
        self.normal[near] = normal[near]
        self.albedo[near] = albedo[near]
        self.cls[near] = cls
        self.surface[near] = surface
        self.instance[near] = instance

    def plane(self, axis: int, value: float, bounds: Dict[int, Tuple],
              normal: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """Depth and hit mask of an axis-aligned rectangle."""
        comp = (self.u, self.v, None)[axis]
        with np.errstate(divide='ignore', invalid='ignore'):
            t = np.full_like(self.u, value) if axis == 2 else value / comp
        hit = np.isfinite(t) & (t > 1e-3)
        point = (self.u * t, self.v * t, t)
        for ax, (lo, hi) in bounds.items():
            hit &= (point[ax] >= lo) & (point[ax] <= hi)
        return t, hit


def _noise(rng: np.random.Generator, h: int, w: int,
           cells: int = 8) -> np.ndarray:
    """Smooth value noise in [0, 1], bilinear from a coarse random grid."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    yy = np.linspace(0, cells, h, dtype=np.float32)
    xx = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(yy.astype(int), cells - 1)
    x0 = np.minimum(xx.astype(int), cells - 1)
    fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx +
            g10 * fy * (1 - fx) + g11 * fy * fx)


def render_scene(rng: np.random.Generator, img_size: Tuple[int, int],
                 max_objects: int = 4, noise: float = 0.02) -> dict:
    """Render one scene.

    Args:
        rng: Source of all the scene's randomness (draws do not depend on
            ``img_size``).
        img_size: ``(H, W)``.
        max_objects: Objects per scene are drawn from ``[1, max_objects]``.
        noise: Standard deviation of the image noise in [0, 1] units.

    Returns:
        dict with ``img`` (uint8 RGB), ``depth`` (float32, metres),
        ``normals`` (float32, x y z), ``semseg`` (uint8, ``CLASSES``),
        ``instance_ids`` (int32, 0 off objects), ``edges`` (uint8 0/1),
        ``offsets`` (float32 dx dy, NaN off objects), ``num_objects``
        (objects with a visible area >= 0.2 % of the image) and ``focal``
        (the focal length in pixels; the principal point is the image
        centre), with which the depth map back-projects to the surfaces
        whose normals ``normals`` are.
    """
    h, w = img_size
    # all scene parameters first, so they do not depend on the resolution
    hfov = np.deg2rad(rng.uniform(60, 80))
    wall_z = rng.uniform(12, 20)
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, -0.4),
                      rng.uniform(-0.9, -0.3)], np.float32)
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.25, 0.4)
    floor_cols = rng.uniform(0.2, 0.9, (2, 3)).astype(np.float32)
    wall_col = rng.uniform(0.3, 0.9, 3).astype(np.float32)
    checker = rng.uniform(0.5, 1.5)
    stripes = rng.uniform(2.0, 6.0)
    texture_seed = int(rng.integers(2**31))
    tan_half = np.tan(hfov / 2)
    objects = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = CLASSES[int(rng.integers(2, len(CLASSES)))]
        z = rng.uniform(3.0, wall_z - 2.5)
        x = rng.uniform(-0.8, 0.8) * z * tan_half
        colour = rng.uniform(0.1, 1.0, 3).astype(np.float32)
        size = rng.uniform(0.4, 1.0, 3)
        angle = rng.uniform(-1.0, 1.0)
        objects.append((kind, x, z, colour, size, angle))

    focal = 0.5 * w / tan_half
    cv = _Canvas(h, w, focal)
    tex = _noise(np.random.default_rng(texture_seed), h, w, 12)
    inf = (-np.inf, np.inf)
    # the wall closes the scene, so every pixel has a depth
    z, hit = cv.plane(2, wall_z, {}, (0, 0, -1))
    wy = cv.v * wall_z
    pattern = 0.75 + 0.25 * np.sin(stripes * cv.u * wall_z)[..., None]
    cv.draw(z, hit, np.array([0, 0, -1], np.float32),
            wall_col * pattern * (0.8 + 0.4 * tex[..., None]), 0, 0, 0)
    del wy
    z, hit = cv.plane(1, CAMERA_HEIGHT, {0: inf, 2: (0, wall_z)}, None)
    fx, fz = cv.u * z, z
    with np.errstate(invalid='ignore'):
        cell = (np.floor(fx / checker) + np.floor(fz / checker)) % 2
    cell = np.nan_to_num(cell).astype(int)
    cv.draw(z, hit, np.array([0, -1, 0], np.float32), floor_cols[cell], 1,
            1, 0)
    for k, (kind, x, oz, colour, size, angle) in enumerate(objects):
        surface, inst, cls = k + 2, k + 1, CLASSES.index(kind)
        albedo = colour * (0.85 + 0.3 * tex[..., None])
        if kind == 'sphere':
            r = 0.4 + 0.8 * size[0]
            centre = np.array([x, CAMERA_HEIGHT - r, oz + r], np.float32)
            a = cv.u**2 + cv.v**2 + 1
            b = cv.u * centre[0] + cv.v * centre[1] + centre[2]
            c = float(centre @ centre) - r * r
            disc = b * b - a * c
            hit = disc >= 0
            t = (b - np.sqrt(np.maximum(disc, 0))) / a
            normal = (np.stack([cv.u * t, cv.v * t, t], -1) - centre) / r
            cv.draw(t, hit, normal, albedo, cls, surface, inst)
        elif kind == 'box':
            bw, bh, bd = 0.6 + 1.4 * size
            x0, x1 = x - bw / 2, x + bw / 2
            top = CAMERA_HEIGHT - bh
            faces = [(2, oz, {0: (x0, x1), 1: (top, CAMERA_HEIGHT)},
                      (0, 0, -1))]
            if top > 0:
                faces.append((1, top, {0: (x0, x1), 2: (oz, oz + bd)},
                              (0, -1, 0)))
            if x0 > 0:
                faces.append((0, x0, {1: (top, CAMERA_HEIGHT),
                                      2: (oz, oz + bd)}, (-1, 0, 0)))
            if x1 < 0:
                faces.append((0, x1, {1: (top, CAMERA_HEIGHT),
                                      2: (oz, oz + bd)}, (1, 0, 0)))
            for axis, value, bounds, normal in faces:
                t, hit = cv.plane(axis, value, bounds, normal)
                cv.draw(t, hit, np.array(normal, np.float32), albedo, cls,
                        surface, inst)
        else:  # panel: a vertical rectangle turned about the y axis
            pw, ph = 1.0 + 1.5 * size[0], 1.0 + 1.5 * size[1]
            n = np.array([np.sin(angle), 0, -np.cos(angle)], np.float32)
            along = np.array([np.cos(angle), 0, np.sin(angle)], np.float32)
            p0 = np.array([x, 0, oz], np.float32)
            denom = cv.u * n[0] + n[2]
            with np.errstate(divide='ignore', invalid='ignore'):
                t = float(n @ p0) / denom
            py = cv.v * t
            a = (cv.u * t - p0[0]) * along[0] + (t - p0[2]) * along[2]
            hit = (np.isfinite(t) & (t > 1e-3) & (np.abs(a) <= pw / 2) &
                   (py >= CAMERA_HEIGHT - ph) & (py <= CAMERA_HEIGHT))
            # the side facing the camera
            sign = np.where(denom > 0, -1.0, 1.0)[..., None]
            stripe = 0.8 + 0.2 * (np.floor(a * 4) % 2)[..., None]
            cv.draw(t, hit, sign * n, albedo * stripe, cls, surface, inst)

    # shading, sensor noise
    shade = ambient + (1 - ambient) * np.clip(cv.normal @ -light, 0, None)
    img = cv.albedo * shade[..., None]
    img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    # occlusion edges: the nearer side of a jump between two surfaces
    edges = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (1, 0)):
        za, zb = cv.z[:h - dy, :w - dx], cv.z[dy:, dx:]
        sa, sb = cv.surface[:h - dy, :w - dx], cv.surface[dy:, dx:]
        jump = (sa != sb) & (np.abs(za - zb) > 0.05 * np.minimum(za, zb))
        edges[:h - dy, :w - dx] |= jump & (za < zb)
        edges[dy:, dx:] |= jump & (zb < za)
    visible = np.bincount(cv.instance.ravel(), minlength=len(objects) + 1)
    min_area = max(4, int(0.002 * h * w))
    return dict(
        img=img,
        depth=cv.z.astype(np.float32),
        normals=cv.normal.astype(np.float32),
        semseg=cv.cls,
        instance_ids=cv.instance,
        edges=edges.astype(np.uint8),
        offsets=instance_offsets(cv.instance),
        num_objects=int((visible[1:] >= min_area).sum()),
        focal=np.float32(focal))


@DATASETS.register_module()
class SyntheticScenes(BaseDataset):
    """Rendered scenes with six tasks, deterministic from a seed.

    Tasks: ``semseg`` (5 classes: wall, floor, sphere, box, panel),
    ``depth`` (metres), ``normals`` (unit x y z), ``edges`` (occlusion
    edges), ``instance`` (offsets to the instance centre, in pixels) and
    ``scene`` (number of visible objects, ``max_objects + 1`` classes).
    Scenes are rendered on the fly in ``get_data_info``, or read from
    ``cache_dir`` (``.npz`` per scene, written on first use; keep it under
    ``data/``, which git ignores).

    Args:
        split: ``'train'``, ``'val'`` or ``'test'`` (disjoint random
            streams).
        num_samples: Scenes in the split.
        img_size: ``(H, W)`` of the rendering.
        tasks: Tasks whose ground truth is given (default: all six).
        max_objects: Most objects in a scene.
        seed: Seed of the split's scenes.
        noise: Image noise standard deviation, in [0, 1] units.
        cache_dir: Folder for rendered scenes, or None to render each time.
        pipeline: Transforms applied to each sample.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(
        classes=CLASSES,
        palette=[[120, 120, 120], [140, 90, 60], [220, 60, 60],
                 [60, 160, 220], [230, 200, 60]],
        tasks=tuple(TASK_FIELDS))

    def __init__(self,
                 split: str = 'train',
                 num_samples: int = 1000,
                 img_size: Tuple[int, int] = (256, 512),
                 tasks: Optional[Sequence[str]] = None,
                 max_objects: int = 4,
                 seed: int = 0,
                 noise: float = 0.02,
                 cache_dir: Optional[str] = None,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'SyntheticScenes: split must be one of '
                             f'{SPLITS}, got {split!r}')
        tasks = select_tasks('SyntheticScenes', tasks, TASK_FIELDS)
        if num_samples < 1:
            raise ValueError(f'SyntheticScenes: num_samples must be >= 1, '
                             f'got {num_samples}')
        if len(img_size) != 2 or min(img_size) < 8:
            raise ValueError(f'SyntheticScenes: img_size must be (H, W) with '
                             f'sides >= 8, got {img_size}')
        if max_objects < 1:
            raise ValueError('SyntheticScenes: max_objects must be >= 1')
        self.split = split
        self.num_samples = num_samples
        self.img_size = tuple(int(s) for s in img_size)
        self.tasks = tasks
        self.max_objects = max_objects
        self.seed = seed
        self.noise = noise
        self.cache_dir = cache_dir
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('tasks', tasks)
        metainfo.setdefault('num_scene_classes', max_objects + 1)
        super().__init__(
            metainfo=metainfo, pipeline=pipeline, serialize_data=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        h, w = self.img_size
        return [
            dict(sample_idx=i, img_shape=(h, w), ori_shape=(h, w),
                 img_path=f'synthetic://{self.split}/{self.seed}/{i}',
                 task_fields={t: TASK_FIELDS[t] for t in self.tasks})
            for i in range(self.num_samples)
        ]

    def render(self, idx: int) -> dict:
        """The rendered arrays of scene ``idx`` (see :func:`render_scene`)."""
        rng = np.random.default_rng(
            [self.seed, SPLITS.index(self.split), idx])
        return render_scene(rng, self.img_size, self.max_objects, self.noise)

    def _cached_render(self, idx: int) -> dict:
        if self.cache_dir is None:
            return self.render(idx)
        key = hashlib.sha1(repr((self.split, self.seed, self.img_size,
                                 self.max_objects, self.noise)).encode())
        path = osp.join(self.cache_dir, key.hexdigest()[:12], f'{idx}.npz')
        if osp.isfile(path):
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        scene = self.render(idx)
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = path + f'.{os.getpid()}.tmp.npz'
        np.savez(tmp, **scene)
        os.replace(tmp, path)
        return scene

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        scene = self._cached_render(info['sample_idx'])
        info['img'] = scene['img']
        info['seg_fields'] = []
        tasks = set(self.tasks)
        if 'semseg' in tasks:
            info['gt_seg_map'] = scene['semseg']
            info['seg_fields'].append('gt_seg_map')
        if 'depth' in tasks:
            add_dense_field(info, 'gt_depth_map', scene['depth'])
        if 'normals' in tasks:
            add_dense_field(info, 'gt_normal_map', scene['normals'],
                            normal=True)
        if 'edges' in tasks:
            add_dense_field(info, 'gt_edge_map', scene['edges'])
        if 'instance' in tasks:
            add_dense_field(info, 'gt_offset_map', scene['offsets'],
                            vector=True, offset=True)
        if 'scene' in tasks:
            info['gt_label'] = int(scene['num_objects'])
        return info
