"""NYUv2 with semantic segmentation, depth and surface normals."""
import os.path as osp
from typing import List, Optional, Sequence

from mmseg.datasets import NYUDataset

from branched_mtl.registry import DATASETS
from .utils import select_tasks

NYU40_CLASSES = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
    'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves',
    'curtain', 'dresser', 'pillow', 'mirror', 'floor mat', 'clothes',
    'ceiling', 'books', 'refridgerator', 'television', 'paper', 'towel',
    'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet',
    'sink', 'lamp', 'bathtub', 'bag', 'otherstructure', 'otherfurniture',
    'otherprop')
NYU13_CLASSES = ('bed', 'books', 'ceiling', 'chair', 'floor', 'furniture',
                 'objects', 'painting', 'sofa', 'table', 'tv', 'wall',
                 'window')
NYU_TASK_FIELDS = dict(semseg='gt_seg_map', depth='gt_depth_map',
                       normals='gt_normal_map')


@DATASETS.register_module()
class NYUv2MultiTask(NYUDataset):
    """mmseg's ``NYUDataset`` layout plus segmentation and normals::

        data_root/
          images/<split>/<name>.jpg
          annotations/<split>/<name>.png    depth, uint16 millimetres (mmseg)
          segmentation/<split>/<name>.png   labels 1..C, 0 = void
          normals/<split>/<name>.png        RGB = (n + 1) * 127.5, black void

    Depth loads with mmseg's ``LoadDepthAnnotation``
    (``depth_rescale_factor=1e-3``), labels with mmseg's ``LoadAnnotations``
    (``reduce_zero_label``: void becomes 255, label k becomes k - 1),
    normals with ``LoadNormalMap``.

    Args:
        split: ``'train'`` or ``'test'`` (folder names).
        num_classes: 13 or 40 (the label set stored in ``segmentation``).
        tasks: Subset of ``semseg``, ``depth``, ``normals``.
        check_files: Fail at start when a selected task's file is missing.
        **kwargs: As for ``NYUDataset``.
    """

    METAINFO = dict(classes=NYU40_CLASSES,
                    scene_classes=NYUDataset.METAINFO['classes'])

    def __init__(self, split: str = 'train', num_classes: int = 40,
                 tasks: Optional[Sequence[str]] = None,
                 check_files: bool = True, **kwargs) -> None:
        if num_classes not in (13, 40):
            raise ValueError(f'NYUv2MultiTask: num_classes must be 13 or 40, '
                             f'got {num_classes}')
        tasks = select_tasks('NYUv2MultiTask', tasks, NYU_TASK_FIELDS)
        self.split = split
        self.tasks = tasks
        self.check_files = check_files
        kwargs.setdefault('data_prefix', dict(
            img_path=f'images/{split}',
            depth_map_path=f'annotations/{split}',
            seg_map_path=f'segmentation/{split}',
            normal_map_path=f'normals/{split}'))
        kwargs.setdefault('reduce_zero_label', True)
        super().__init__(**kwargs)
        if num_classes == 13:
            # the stored labels are already the 13 classes: no label map
            self._metainfo['classes'] = NYU13_CLASSES

    def _get_category_id_from_filename(self, image_fname: str) -> int:
        # mmseg's: the scene name before the first digit ("kitchen_0004"),
        # -1 when there is none (plain numeric names)
        name = osp.basename(image_fname)
        digits = [i for i, c in enumerate(name) if c.isdigit()]
        scene = name[:digits[0] - 1] if digits and digits[0] > 0 else ''
        scenes = self._metainfo['scene_classes']
        return scenes.index(scene) if scene in scenes else -1

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        img_dir = self.data_prefix['img_path']
        keys = dict(semseg=('seg_map_path', '.png'),
                    depth=('depth_map_path', self.seg_map_suffix),
                    normals=('normal_map_path', '.png'))
        for idx, info in enumerate(data_list):
            stem = osp.relpath(info['img_path'], img_dir)[:-len(
                self.img_suffix)]
            for task in self.tasks:
                key, suffix = keys[task]
                info[key] = osp.join(self.data_prefix[key], stem + suffix)
                if self.check_files and not osp.isfile(info[key]):
                    raise FileNotFoundError(
                        f'NYUv2MultiTask: {key} {info[key]} of '
                        f'{info["img_path"]} (task {task!r}) does not exist')
            info['sample_idx'] = idx
            info['label_map'] = None
            info['reduce_zero_label'] = self.reduce_zero_label
            info['task_fields'] = {t: NYU_TASK_FIELDS[t] for t in self.tasks}
        return data_list
