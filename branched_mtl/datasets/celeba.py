"""CelebA: 40 binary face attributes, one classification task each."""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine import fileio
from mmengine.dataset import BaseDataset

from branched_mtl.registry import DATASETS

CELEBA_ATTRIBUTES = (
    '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes',
    'Bald', 'Bangs', 'Big_Lips', 'Big_Nose', 'Black_Hair', 'Blond_Hair',
    'Blurry', 'Brown_Hair', 'Bushy_Eyebrows', 'Chubby', 'Double_Chin',
    'Eyeglasses', 'Goatee', 'Gray_Hair', 'Heavy_Makeup', 'High_Cheekbones',
    'Male', 'Mouth_Slightly_Open', 'Mustache', 'Narrow_Eyes', 'No_Beard',
    'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline',
    'Rosy_Cheeks', 'Sideburns', 'Smiling', 'Straight_Hair', 'Wavy_Hair',
    'Wearing_Earrings', 'Wearing_Hat', 'Wearing_Lipstick',
    'Wearing_Necklace', 'Wearing_Necktie', 'Young')
SPLITS = ('train', 'val', 'test')


@DATASETS.register_module()
class CelebA(BaseDataset):
    """CelebA's official layout, one binary task per attribute::

        data_root/
          img_align_celeba/000001.jpg ...
          list_attr_celeba.txt       count, 40 names, "<file> +-1 x 40"
          list_eval_partition.txt    "<file> 0|1|2" (train / val / test)

    Labels are ``gt_label = {attribute: 0 or 1}`` (1 where the file says
    1), packed by mmpretrain's ``PackMultiTaskInputs``. A malformed line, an
    unknown attribute name or a value other than -1 / 1 raises an error
    naming the file and line.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``.
        tasks: Attributes to predict (default: all 40).
        img_dir, attr_file, partition_file: Paths relative to ``data_root``
            (the Google Drive release keeps the lists under ``Anno/`` and
            ``Eval/``: set them so).
        **kwargs: As for :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(tasks=CELEBA_ATTRIBUTES)

    def __init__(self, split: str = 'train',
                 tasks: Optional[Sequence[str]] = None,
                 img_dir: str = 'img_align_celeba',
                 attr_file: str = 'list_attr_celeba.txt',
                 partition_file: str = 'list_eval_partition.txt',
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'CelebA: split must be one of {SPLITS}, got '
                             f'{split!r}')
        tasks = tuple(CELEBA_ATTRIBUTES if tasks is None else tasks)
        unknown = [t for t in tasks if t not in CELEBA_ATTRIBUTES]
        if unknown or not tasks:
            raise ValueError(f'CelebA: unknown attribute(s) {unknown}')
        self.split = split
        self.tasks = tasks
        self.img_dir, self.attr_file = img_dir, attr_file
        self.partition_file = partition_file
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo['tasks'] = tasks
        super().__init__(metainfo=metainfo, **kwargs)

    def _path(self, rel: str) -> str:
        return osp.join(self.data_root or '', rel)

    def load_data_list(self) -> List[dict]:
        part_path = self._path(self.partition_file)
        wanted = set()
        for n, line in enumerate(fileio.get_text(part_path).splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
                raise ValueError(f'CelebA: {part_path} line {n} must be '
                                 f'"<file> 0|1|2", got {line!r}')
            if int(parts[1]) == SPLITS.index(self.split):
                wanted.add(parts[0])
        attr_path = self._path(self.attr_file)
        lines = fileio.get_text(attr_path).splitlines()
        if len(lines) < 2:
            raise ValueError(f'CelebA: {attr_path} is truncated')
        names = lines[1].split()
        if sorted(names) != sorted(CELEBA_ATTRIBUTES):
            raise ValueError(f'CelebA: {attr_path} line 2 must list the 40 '
                             f'attributes, got {names[:5]}...')
        columns = [names.index(t) for t in self.tasks]
        data_list = []
        for n, line in enumerate(lines[2:], 3):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != len(names) + 1:
                raise ValueError(f'CelebA: {attr_path} line {n} ({parts[0]})'
                                 f' has {len(parts) - 1} values, expected '
                                 f'{len(names)}')
            if parts[0] not in wanted:
                continue
            values = parts[1:]
            bad = [names[i] for i, v in enumerate(values)
                   if v not in ('1', '-1')]
            if bad:
                raise ValueError(f'CelebA: {attr_path} line {n} ({parts[0]})'
                                 f': values of {bad} are not -1 or 1')
            data_list.append(dict(
                img_path=self._path(osp.join(self.img_dir, parts[0])),
                sample_idx=len(data_list),
                gt_label={t: int(values[c] == '1')
                          for t, c in zip(self.tasks, columns)}))
        if int(lines[0].split()[0]) != len(lines[2:]) - lines[2:].count(''):
            raise ValueError(f'CelebA: {attr_path} says {lines[0].strip()} '
                             f'images but lists {len(lines) - 2}')
        return data_list
