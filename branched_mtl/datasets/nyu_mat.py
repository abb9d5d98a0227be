"""NYUv2 read straight from the official ``nyu_depth_v2_labeled.mat``."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from branched_mtl.registry import DATASETS
from .nyu import NYU13_CLASSES, NYU40_CLASSES, NYU_TASK_FIELDS
from .utils import (data_path, import_h5py, read_mat, require_file,
                    select_tasks)

NYU_RAW_CLASSES = 894  # labels of the labeled file: 1..894, 0 = unlabeled
SPLIT_KEYS = dict(train='trainNdxs', test='testNdxs')
# where the label mappings come from, for the errors of a missing file
MAPPING_SOURCES = {
    'classMapping40.mat': (
        'the 894 -> 40 class mapping of Gupta et al. (CVPR 2013), variable '
        '`mapClass`; it is not part of the NYU download: it ships with '
        'their code and with github.com/ankurhanda/nyuv2-meta-data'),
    'class13Mapping.mat': (
        'the 40 -> 13 class mapping (Couprie et al. 2013), variable '
        '`classMapping13`, from github.com/ankurhanda/nyuv2-meta-data; '
        'it maps the 40 classes, so it follows classMapping40.mat'),
}
DEFAULT_MAPPINGS = {40: ['classMapping40.mat'],
                    13: ['classMapping40.mat', 'class13Mapping.mat'],
                    NYU_RAW_CLASSES: []}
# preferred variable of a mapping .mat (others: the only numeric one)
MAPPING_VARIABLES = ('mapClass', 'classMapping13', 'mapping')


def _numeric(value) -> Optional[np.ndarray]:
    """The first numeric array in a .mat value (a struct's first numeric
    field: ``classMapping13`` holds the map before the names)."""
    if isinstance(value, dict):
        fields = value.values()
    elif isinstance(value, np.ndarray) and value.dtype.names:
        fields = [value[name] for name in value.dtype.names]
    else:
        arr = np.asarray(value)
        if arr.dtype == object and arr.size == 1:
            return _numeric(arr.item())
        return arr if np.issubdtype(arr.dtype, np.number) else None
    for field in fields:
        arr = _numeric(field)
        if arr is not None and arr.size > 1:
            return arr
    return None


def read_class_mapping(path: str) -> np.ndarray:
    """A label mapping: ``mapping[k - 1]`` is the new label of class ``k``.

    Args:
        path: ``.mat`` (``mapClass`` / ``classMapping13`` / ``mapping`` or
            the only numeric variable), ``.npy``, ``.json`` (a list) or
            ``.txt`` (numbers separated by spaces, commas or new lines).

    Returns:
        1-D int64 array of the new labels (0 = void).
    """
    what = 'label mapping file'
    ext = osp.splitext(path)[1].lower()
    try:
        if ext == '.mat':
            variables = read_mat(path, what)
            known = [n for n in MAPPING_VARIABLES if n in variables]
            numeric = [n for n, v in variables.items()
                       if _numeric(v) is not None]
            if not known and len(numeric) != 1:
                raise ValueError(f'holds {sorted(variables)}; expected one '
                                 f'of {MAPPING_VARIABLES} or one numeric '
                                 'variable')
            arr = _numeric(variables[(known or numeric)[0]])
        elif ext == '.npy':
            arr = np.load(path, allow_pickle=False)
        elif ext == '.json':
            with open(path) as f:
                arr = np.asarray(json.load(f))
        elif ext == '.txt':
            with open(path) as f:
                arr = np.asarray(f.read().replace(',', ' ').split(), float)
        else:
            raise ValueError('must be .mat, .npy, .json or .txt')
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f'{what} {path} cannot be read: {err}') from err
    arr = np.asarray(arr).ravel()
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.number) or (
            arr != np.round(arr)).any() or (arr < 0).any():
        raise ValueError(f'{what} {path} must hold non-negative integer '
                         'labels')
    return arr.astype(np.int64)


def compose_class_mappings(paths: Sequence[str],
                           num_in: int = NYU_RAW_CLASSES) -> np.ndarray:
    """Chain label mappings into one lookup table over ``0..num_in``.

    Each mapping has one entry per class of the previous stage (or one more,
    for label 0 first); label 0 (unlabeled) always stays 0.

    Args:
        paths: Mapping files, applied in order (e.g. ``classMapping40.mat``
            then ``class13Mapping.mat``).
        num_in: Classes of the raw labels.

    Returns:
        ``(num_in + 1,)`` int64 table: raw label -> final label (0 = void).
    """
    lut = np.arange(num_in + 1)
    for path in paths:
        mapping = read_class_mapping(path)
        n = int(lut.max())
        if mapping.size == n + 1:
            if mapping[0] != 0:
                raise ValueError(f'label mapping {path} has {n + 1} entries '
                                 f'(labels 0..{n}) but maps 0 (unlabeled) to '
                                 f'{mapping[0]}')
            mapping = mapping[1:]
        if mapping.size != n:
            raise ValueError(f'label mapping {path} has {mapping.size} '
                             f'entries; it must map the {n} classes of the '
                             'previous stage (one entry per class)')
        lut = np.concatenate([[0], mapping])[lut]
    return lut


@DATASETS.register_module()
class NYUv2MatMultiTask(BaseDataset):
    """NYUv2 from the official labeled file, without any conversion::

        data_root/
          nyu_depth_v2_labeled.mat   the official labeled file (MATLAB v7.3)
          splits.mat                 the official 795 / 654 split
                                     (``trainNdxs`` / ``testNdxs``, 1-based)
          classMapping40.mat         894 -> 40 labels (for 13 or 40 classes)
          class13Mapping.mat         40 -> 13 labels (for 13 classes)
          normals/0001.png ...       optional: one normal map per image,
                                     named by its 1-based index in the file

    The file is HDF5 (read with h5py), axes reversed from MATLAB's:
    ``images`` ``(N, 3, W, H)`` uint8 RGB, ``depths`` ``(N, W, H)`` float
    metres (in-painted; ``rawDepths`` also exists), ``labels`` ``(N, W, H)``
    0..894 (0 = unlabeled). Nothing is held in memory: each sample is read
    by ``LoadNYUv2Mat`` (image BGR like ``LoadImageFromFile``, labels mapped
    to ``0..C-1`` with void = ``ignore_index`` like mmseg's
    ``LoadAnnotations(reduce_zero_label=True)``, depth in metres);
    ``LoadNormalMap`` reads the normal maps. So the NYU pipeline is the
    folder layout's (:class:`NYUv2MultiTask`) with ``LoadNYUv2Mat`` in
    place of its three loaders.

    Args:
        mat_file: The labeled file.
        split: ``'train'`` (795 images) or ``'test'`` (654).
        split_file: ``splits.mat`` of the NYU toolbox.
        num_classes: 40, 13, or 894 (the file's raw classes, no mapping).
        class_mapping: Mapping file(s) applied in order, ``.mat`` / ``.npy``
            / ``.json`` / ``.txt`` (one label per raw class, 894 entries, or
            895 with label 0 first). Default: ``classMapping40.mat`` for 40
            classes, then ``class13Mapping.mat`` for 13, none for 894.
        tasks: Subset of ``semseg``, ``depth``, ``normals``; default all
            that the arguments provide (``normals`` with ``normals_dir``).
        normals_dir: Folder of per-image normal maps (``LoadNormalMap``'s
            png encoding).
        normal_name: File name of image ``i`` (1-based) in ``normals_dir``.
        depth_key: ``'depths'`` (in-painted) or ``'rawDepths'`` (0 = none).
        ignore_index: Label of unlabeled pixels; must not be a class (use
            e.g. 65535 with 894 classes).
        check_files: Fail at start when a normal map is missing.
        **kwargs: As for ``BaseDataset`` (``data_root``, ``pipeline`` ...).
            Relative paths above are under ``data_root``.
    """

    METAINFO = dict(classes=NYU40_CLASSES)

    def __init__(self,
                 mat_file: str = 'nyu_depth_v2_labeled.mat',
                 split: str = 'train',
                 split_file: str = 'splits.mat',
                 num_classes: int = 40,
                 class_mapping: Union[str, Sequence[str], None] = None,
                 tasks: Optional[Sequence[str]] = None,
                 normals_dir: Optional[str] = None,
                 normal_name: str = '{:04d}.png',
                 depth_key: str = 'depths',
                 ignore_index: int = 255,
                 check_files: bool = True,
                 **kwargs) -> None:
        name = type(self).__name__
        if split not in SPLIT_KEYS:
            raise ValueError(f'{name}: split must be one of '
                             f'{list(SPLIT_KEYS)}, got {split!r}')
        if num_classes not in DEFAULT_MAPPINGS:
            raise ValueError(f'{name}: num_classes must be 13, 40 or 894, '
                             f'got {num_classes}')
        if 0 <= ignore_index < num_classes:
            raise ValueError(f'{name}: ignore_index {ignore_index} is one of '
                             f'the {num_classes} classes; pass one outside '
                             f'[0, {num_classes}) (and the same to '
                             'PackDenseTaskInputs and the loss)')
        if depth_key not in ('depths', 'rawDepths'):
            raise ValueError(f"{name}: depth_key must be 'depths' or "
                             f"'rawDepths', got {depth_key!r}")
        if tasks is None:
            tasks = ['semseg', 'depth'] + (['normals'] if normals_dir else [])
        self.tasks = select_tasks(name, tasks, NYU_TASK_FIELDS)
        if 'normals' in self.tasks and not normals_dir:
            raise ValueError(f'{name}: task normals needs normals_dir (the '
                             'labeled file has no normals)')
        root = kwargs.get('data_root')
        self.mat_file = data_path(mat_file, root)
        self.split = split
        self.split_file = data_path(split_file, root)
        self.num_classes = num_classes
        if class_mapping is None:
            class_mapping = DEFAULT_MAPPINGS[num_classes]
        elif isinstance(class_mapping, str):
            class_mapping = [class_mapping]
        self.class_mapping = [data_path(p, root) for p in class_mapping]
        self.normals_dir = normals_dir and data_path(normals_dir, root)
        self.normal_name = normal_name
        self.depth_key = depth_key
        self.ignore_index = ignore_index
        self.check_files = check_files
        super().__init__(**kwargs)

    def _label_lut(self) -> np.ndarray:
        """Raw label (0..894) -> training label (0..C-1, void ignored)."""
        name = type(self).__name__
        for path in self.class_mapping:
            what = MAPPING_SOURCES.get(
                osp.basename(path), 'a label mapping (one new label per raw '
                'class, 0 = void)')
            require_file(path, name, what)
        lut = compose_class_mappings(self.class_mapping)
        top = int(lut.max())
        if top != self.num_classes:
            hint = (' (for 13 classes give classMapping40.mat then '
                    'class13Mapping.mat)' if self.num_classes == 13 else '')
            raise ValueError(
                f'{name}: the label mapping {self.class_mapping} gives '
                f'labels up to {top}, but num_classes={self.num_classes}'
                f'{hint}')
        dtype = np.uint8 if self.ignore_index <= 255 else np.uint16
        if self.ignore_index > np.iinfo(np.uint16).max:
            dtype = np.int32
        return np.where(lut > 0, lut - 1, self.ignore_index).astype(dtype)

    def _split_indices(self, num_images: int) -> List[int]:
        """0-based indices of the split's images in the labeled file."""
        name = type(self).__name__
        require_file(self.split_file, name, 'the NYU toolbox\'s splits.mat '
                     '(trainNdxs / testNdxs, the standard 795 / 654 split)')
        key = SPLIT_KEYS[self.split]
        variables = read_mat(self.split_file, 'split file')
        if key not in variables:
            raise ValueError(f'{name}: split file {self.split_file} has no '
                             f'{key} (it holds {sorted(variables)})')
        idx = np.asarray(variables[key]).ravel()
        if idx.size == 0 or idx.min() < 1 or idx.max() > num_images or len(
                set(idx.tolist())) != idx.size:
            raise ValueError(f'{name}: {key} of {self.split_file} must be '
                             f'distinct 1-based indices into the {num_images}'
                             f' images of {self.mat_file}')
        return [int(i) - 1 for i in idx]

    def _read_layout(self) -> int:
        """Check the labeled file's variables; return its image count."""
        name = type(self).__name__
        require_file(self.mat_file, name, 'the official NYU Depth v2 '
                     'labeled file nyu_depth_v2_labeled.mat')
        h5py = import_h5py(self.mat_file)
        try:
            # closed again before any data loader worker forks
            with h5py.File(self.mat_file, 'r') as f:
                return self._check_layout(f)
        except OSError as err:
            raise ValueError(f'{name}: {self.mat_file} cannot be read as a '
                             f'MATLAB v7.3 (HDF5) file: {err}') from err

    def _check_layout(self, f) -> int:
        name = type(self).__name__
        need = ['images'] + [dict(semseg='labels', depth=self.depth_key)[t]
                             for t in self.tasks if t != 'normals']
        missing = [k for k in need if k not in f]
        if missing:
            raise ValueError(f'{name}: {self.mat_file} has no {missing} (it '
                             f'holds {sorted(f)}); is it the labeled file?')
        n, c, w, h = f['images'].shape
        if c != 3:
            raise ValueError(f'{name}: images of {self.mat_file} are '
                             f'{f["images"].shape}, expected (N, 3, W, H)')
        for key in need[1:]:
            if f[key].shape != (n, w, h):
                raise ValueError(f'{name}: {key} of {self.mat_file} is '
                                 f'{f[key].shape}, expected {(n, w, h)} '
                                 'like the images')
        if self.num_classes == NYU_RAW_CLASSES:
            self._metainfo['classes'] = self._raw_class_names(f)
        elif self.num_classes == 13:
            self._metainfo['classes'] = NYU13_CLASSES
        return n

    @staticmethod
    def _raw_class_names(f) -> tuple:
        try:
            names = tuple(''.join(map(chr, f[ref][()].ravel()))
                          for ref in f['names'][()].ravel())
        except (KeyError, TypeError, ValueError):
            names = ()
        if len(names) != NYU_RAW_CLASSES:
            names = tuple(f'class_{k}' for k in range(1, NYU_RAW_CLASSES + 1))
        return names

    def load_data_list(self) -> List[dict]:
        num_images = self._read_layout()
        indices = self._split_indices(num_images)
        lut = self._label_lut() if 'semseg' in self.tasks else None
        task_fields = {t: NYU_TASK_FIELDS[t] for t in self.tasks}
        data_list = []
        for sample_idx, i in enumerate(indices):
            info: Dict = dict(
                img_path=f'{self.mat_file}#{i + 1}', mat_path=self.mat_file,
                mat_index=i, mat_depth_key=self.depth_key,
                sample_idx=sample_idx, task_fields=task_fields)
            if lut is not None:
                info['label_lut'] = lut
            if 'normals' in self.tasks:
                path = osp.join(self.normals_dir,
                                self.normal_name.format(i + 1))
                if self.check_files and not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{type(self).__name__}: normal map {path} of image '
                        f'{i + 1} of {self.mat_file} does not exist')
                info['normal_map_path'] = path
            data_list.append(info)
        return data_list
