"""Cityscapes with semantic segmentation, instance offsets and depth."""
import os.path as osp
from typing import List, Optional, Sequence

from mmseg.datasets import CityscapesDataset

from branched_mtl.registry import DATASETS
from .utils import select_tasks

CITYSCAPES_TASK_FIELDS = dict(semseg='gt_seg_map', instance='gt_offset_map',
                              depth='gt_depth_map')


@DATASETS.register_module()
class CityscapesMultiTask(CityscapesDataset):
    """mmseg's ``CityscapesDataset`` reading the official layout for the
    paper's three tasks::

        data_root/
          leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
          gtFine/<split>/<city>/<name>_gtFine_labelIds.png
          gtFine/<split>/<city>/<name>_gtFine_instanceIds.png
          disparity/<split>/<city>/<name>_disparity.png
          camera/<split>/<city>/<name>_camera.json

    Image listing, the 19 classes and their palette are mmseg's; this class
    adds the instance, disparity and camera paths. ``LoadCityscapesAnnotations``
    turns the files into targets (train ids, offsets, metres).

    Args:
        split: ``'train'``, ``'val'`` or ``'test'`` (folder names).
        tasks: Subset of ``semseg``, ``instance``, ``depth``.
        check_files: Fail at start when an annotation file of a selected task
            is missing (naming it) rather than mid-training.
        **kwargs: As for ``CityscapesDataset`` (``data_root``, ``pipeline``
            ...); ``data_prefix`` defaults to the split's folders.
    """

    def __init__(self, split: str = 'train',
                 tasks: Optional[Sequence[str]] = None,
                 check_files: bool = True, **kwargs) -> None:
        tasks = select_tasks('CityscapesMultiTask', tasks,
                             CITYSCAPES_TASK_FIELDS)
        self.split = split
        self.tasks = tasks
        self.check_files = check_files
        kwargs.setdefault('data_prefix', dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'))
        kwargs.setdefault('seg_map_suffix', '_gtFine_labelIds.png')
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        img_dir = self.data_prefix['img_path']
        root = osp.dirname(osp.dirname(img_dir))  # data_root
        for idx, info in enumerate(data_list):
            rel = osp.relpath(info['img_path'], img_dir)
            stem = rel[:-len(self.img_suffix)]
            info['instance_path'] = osp.join(
                self.data_prefix['seg_map_path'],
                stem + '_gtFine_instanceIds.png')
            info['disparity_path'] = osp.join(root, 'disparity', self.split,
                                              stem + '_disparity.png')
            info['camera_path'] = osp.join(root, 'camera', self.split,
                                           stem + '_camera.json')
            info['sample_idx'] = idx
            info['task_fields'] = {t: CITYSCAPES_TASK_FIELDS[t]
                                   for t in self.tasks}
            if self.check_files:
                needed = dict(semseg=['seg_map_path'],
                              instance=['instance_path'],
                              depth=['disparity_path', 'camera_path'])
                for task in self.tasks:
                    for key in needed[task]:
                        if not osp.isfile(info[key]):
                            raise FileNotFoundError(
                                f'CityscapesMultiTask: {key} {info[key]} of '
                                f'{info["img_path"]} (task {task!r}) does '
                                'not exist')
        return data_list
