"""SUN RGB-D in its official folder layout, 37-class labels and depth."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmengine.dataset import BaseDataset

from branched_mtl.registry import DATASETS
from .nyu import NYU_TASK_FIELDS
from .utils import (data_path, import_h5py, read_mat, require_file,
                    select_tasks)

# seg37list.mat of the toolbox: labels 1..37, 0 = void
SUNRGBD37_CLASSES = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
    'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves',
    'curtain', 'dresser', 'pillow', 'mirror', 'floor_mat', 'clothes',
    'ceiling', 'books', 'fridge', 'tv', 'paper', 'towel', 'shower_curtain',
    'box', 'whiteboard', 'person', 'night_stand', 'toilet', 'sink', 'lamp',
    'bathtub', 'bag')
SPLIT_KEYS = dict(train='alltrain', test='alltest')
# the toolbox's absolute paths start '/n/fs/sun3d/data/SUNRGBD/'
TOOLBOX_ROOT = 'SUNRGBD/'
LABEL_DIR = 'label37'
SPLIT_SOURCE = ("the toolbox's SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat "
                "(alltrain / alltest: the standard 5285 / 5050 split), or a "
                "text file of scene folders, one a line")


def scene_folder(entry: str) -> str:
    """A scene folder relative to the ``SUNRGBD`` folder.

    Args:
        entry: A path of ``allsplit.mat`` or ``SUNRGBDMeta.mat``
            (``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001``) or one
            already relative (``kv1/NYUdata/NYU0001``).

    Returns:
        The relative folder, without trailing ``/``.
    """
    entry = str(entry).strip().replace('\\', '/')
    if entry.startswith('/') and TOOLBOX_ROOT in entry:
        entry = entry.split(TOOLBOX_ROOT, 1)[1]
    return entry.strip('/')


def _single_file(folder: str, suffixes: Sequence[str], what: str) -> str:
    """The one file of a scene's sub-folder (each holds exactly one)."""
    try:
        names = sorted(n for n in os.listdir(folder)
                       if n.lower().endswith(tuple(suffixes)))
    except OSError as err:
        raise FileNotFoundError(f'SUNRGBDMultiTask: {what} folder {folder} '
                                f'cannot be listed: {err}') from err
    if len(names) != 1:
        raise ValueError(f'SUNRGBDMultiTask: {what} folder {folder} must '
                         f'hold one {"/".join(suffixes)} file, found {names}')
    return osp.join(folder, names[0])


@DATASETS.register_module()
class SUNRGBDMultiTask(BaseDataset):
    """SUN RGB-D: 37-class segmentation, depth, optional normals.

    The layout is the official ``SUNRGBD.zip`` unzipped, plus one label png
    per scene written from the toolbox (``SUNRGBDtoolbox.zip``) by
    :func:`export_sunrgbd_labels`::

        data_root/                      the SUNRGBD folder of SUNRGBD.zip
          <sensor>/<collection>/.../<scene>/    e.g. kv1/NYUdata/NYU0001,
              image/<name>.jpg          official: the scene's one image
              depth/<name>.png          official raw depth (or depth_bfx/,
                                        the in-painted one: depth_dir)
              label37/<name>.png        37 classes (seg37list.mat order),
                                        0 = void; the toolbox's
                                        Metadata/SUNRGBD2Dseg.mat `seglabel`
              normals/<name>.png        optional, LoadNormalMap's encoding
        split_file                      SUNRGBDtoolbox/traintestSUNRGBD/
                                        allsplit.mat (`alltrain` 5285 /
                                        `alltest` 5050 scene folders as
                                        /n/fs/sun3d/data/SUNRGBD/<scene>),
                                        or a text file of scene folders
                                        relative to data_root, one a line

    ``<name>`` is the image's name (``NYU0001``, ``0000103`` ...); depth is
    the one png of ``depth/``. ``LoadSUNRGBDAnnotations`` reads labels
    (void -> 255, k -> k - 1, as mmseg's ``reduce_zero_label``) and depth
    (pngs hold millimetres rotated by 3 bits; undone as the toolbox does),
    for the selected tasks only. Images differ in size per sensor
    (640x480 ... 730x530), so pipelines resize to one size.

    Args:
        split: ``'train'`` or ``'test'``.
        split_file: ``allsplit.mat`` or a text file (see above).
        tasks: Subset of ``semseg``, ``depth``, ``normals`` (default the
            first two).
        depth_dir: Sub-folder of the depth png: ``depth`` or ``depth_bfx``.
        normals_dir: Sub-folder of the normal maps.
        check_files: Fail at start when a selected task's file is missing.
        **kwargs: As for ``BaseDataset``; a relative ``split_file`` is under
            ``data_root``.
    """

    METAINFO = dict(classes=SUNRGBD37_CLASSES)

    def __init__(self, split: str = 'train',
                 split_file: str = 'allsplit.mat',
                 tasks: Optional[Sequence[str]] = None,
                 depth_dir: str = 'depth',
                 normals_dir: str = 'normals',
                 check_files: bool = True, **kwargs) -> None:
        if split not in SPLIT_KEYS:
            raise ValueError(f'SUNRGBDMultiTask: split must be one of '
                             f'{list(SPLIT_KEYS)}, got {split!r}')
        self.split = split
        self.split_file = data_path(split_file, kwargs.get('data_root'))
        self.tasks = select_tasks('SUNRGBDMultiTask',
                                  ('semseg', 'depth') if tasks is None
                                  else tasks, NYU_TASK_FIELDS)
        self.depth_dir = depth_dir
        self.normals_dir = normals_dir
        self.check_files = check_files
        super().__init__(**kwargs)

    def scene_folders(self) -> List[str]:
        """The split's scene folders, relative to ``data_root``."""
        require_file(self.split_file, 'SUNRGBDMultiTask', SPLIT_SOURCE)
        if self.split_file.lower().endswith('.mat'):
            variables = read_mat(self.split_file, 'split file')
            key = SPLIT_KEYS[self.split]
            if key not in variables:
                raise ValueError(f'SUNRGBDMultiTask: split file '
                                 f'{self.split_file} has no {key} (it holds '
                                 f'{sorted(variables)})')
            entries = np.atleast_1d(np.asarray(variables[key],
                                               dtype=object)).ravel()
        else:
            with open(self.split_file) as f:
                entries = [line for line in f if line.strip()]
        scenes = [scene_folder(e) for e in entries]
        if not scenes or len(set(scenes)) != len(scenes):
            raise ValueError(f'SUNRGBDMultiTask: split file {self.split_file}'
                             f' lists {len(scenes)} scenes, '
                             f'{len(set(scenes))} distinct')
        return scenes

    def load_data_list(self) -> List[dict]:
        root = self.data_root or ''
        task_fields = {t: NYU_TASK_FIELDS[t] for t in self.tasks}
        data_list = []
        for idx, scene in enumerate(self.scene_folders()):
            folder = osp.join(root, scene)
            img = _single_file(osp.join(folder, 'image'), ('.jpg', ),
                               'image')
            stem = osp.splitext(osp.basename(img))[0]
            info: Dict = dict(img_path=img, scene=scene, sample_idx=idx,
                              seg_fields=[], task_fields=task_fields)
            if 'semseg' in self.tasks:
                info['seg_map_path'] = osp.join(folder, LABEL_DIR,
                                                stem + '.png')
            if 'depth' in self.tasks:
                info['depth_map_path'] = _single_file(
                    osp.join(folder, self.depth_dir), ('.png', ), 'depth')
            if 'normals' in self.tasks:
                info['normal_map_path'] = osp.join(folder, self.normals_dir,
                                                   stem + '.png')
            if self.check_files:
                for key, task, hint in (
                        ('seg_map_path', 'semseg',
                         'write the labels with export_sunrgbd_labels'),
                        ('normal_map_path', 'normals', 'normals are not '
                         'part of SUN RGB-D: bring your own')):
                    if key in info and not osp.isfile(info[key]):
                        raise FileNotFoundError(
                            f'SUNRGBDMultiTask: {key} {info[key]} of {img} '
                            f'(task {task!r}) does not exist; {hint}')
            data_list.append(info)
        return data_list


def _struct_field(struct, field: str, what: str) -> list:
    """One field of every element of a MATLAB struct array."""
    try:
        if isinstance(struct, dict):  # v7.3, read by read_mat
            values = struct[field]
        else:
            values = np.atleast_1d(struct[field]).ravel()
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f'{what} has no field {field!r}') from err
    return [str(v) for v in values]


def export_sunrgbd_labels(data_root: str, toolbox_dir: str,
                          overwrite: bool = False) -> int:
    """Write ``<scene>/label37/<name>.png`` for every SUN RGB-D image.

    Reads the toolbox's ``Metadata/SUNRGBDMeta.mat`` (which scene each of
    the 10335 images is: ``rgbpath``) and ``Metadata/SUNRGBD2Dseg.mat``
    (MATLAB v7.3; ``SUNRGBD2Dseg.seglabel``, the 37-class labels in the
    same order), one label map at a time (the whole file does not fit in
    memory). Run once::

        python -c "from branched_mtl.datasets.sunrgbd import \\
            export_sunrgbd_labels as e; e('data/sunrgbd/SUNRGBD', \\
            'data/sunrgbd/SUNRGBDtoolbox')"

    Args:
        data_root: The ``SUNRGBD`` folder of ``SUNRGBD.zip``.
        toolbox_dir: The unzipped ``SUNRGBDtoolbox`` folder.
        overwrite: Rewrite existing label pngs.

    Returns:
        The number of pngs written.
    """
    from PIL import Image  # reads only the image header for its size
    meta_path = require_file(
        osp.join(toolbox_dir, 'Metadata', 'SUNRGBDMeta.mat'),
        'export_sunrgbd_labels', 'the SUN RGB-D toolbox metadata')
    seg_path = require_file(
        osp.join(toolbox_dir, 'Metadata', 'SUNRGBD2Dseg.mat'),
        'export_sunrgbd_labels', 'the SUN RGB-D toolbox 2D segmentation')
    variables = read_mat(meta_path, 'SUN RGB-D metadata')
    if 'SUNRGBDMeta' not in variables:
        raise ValueError(f'{meta_path} has no SUNRGBDMeta (it holds '
                         f'{sorted(variables)})')
    rgb_paths = _struct_field(variables['SUNRGBDMeta'], 'rgbpath', meta_path)
    h5py = import_h5py(seg_path)
    written = 0
    with h5py.File(seg_path, 'r') as f:
        try:
            refs = f['SUNRGBD2Dseg']['seglabel'][()].ravel()
        except KeyError as err:
            raise ValueError(f'{seg_path} has no SUNRGBD2Dseg.seglabel '
                             f'(it holds {sorted(f)})') from err
        if len(refs) != len(rgb_paths):
            raise ValueError(f'{seg_path} has {len(refs)} label maps but '
                             f'{meta_path} {len(rgb_paths)} images')
        for ref, rgb in zip(refs, rgb_paths):
            # .../<scene>/image/<name>.jpg
            rel = scene_folder(rgb)
            scene, name = osp.dirname(osp.dirname(rel)), osp.basename(rel)
            img = osp.join(data_root, scene, 'image', name)
            out = osp.join(data_root, scene, LABEL_DIR,
                           osp.splitext(name)[0] + '.png')
            if osp.isfile(out) and not overwrite:
                continue
            label = np.asarray(f[ref][()]).T  # HDF5 axes reversed: (H, W)
            if label.size and (label.min() < 0 or label.max() > 37):
                raise ValueError(f'{seg_path}: the labels of {rgb} reach '
                                 f'{label.max()}; seglabel has 37 classes')
            try:
                with Image.open(img) as im:
                    size = im.size[::-1]
            except OSError as err:
                raise FileNotFoundError(f'image {img} (of {rgb} in '
                                        f'{meta_path}) cannot be read: '
                                        f'{err}') from err
            if label.shape != size:
                raise ValueError(f'{seg_path}: the labels of {rgb} are '
                                 f'{label.shape}, the image {img} {size}')
            os.makedirs(osp.dirname(out), exist_ok=True)
            if not mmcv.imwrite(label.astype(np.uint8), out):
                raise OSError(f'cannot write {out}')
            written += 1
    return written
