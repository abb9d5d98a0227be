"""PrecollatedDataset: an in-memory data set served as whole batches.

mmengine's data path builds a batch sample by sample: the data set deep-
copies each sample's record and runs the pipeline on it, ``pseudo_collate``
gathers the results, and the data preprocessor copies every data sample
again (``cast_data``) before it stacks the images. For a small model on an
in-memory data set (MultiDigits, PlantedDigits) that is a large part of a
training iteration, and none of it changes between epochs when the
pipeline draws nothing at random. This wrapper runs the pipeline once per
sample, stacks the images into one tensor and keeps the packed data
samples; a batch is then an index into the stack (through the DataLoader's
``__getitems__``) and the same data samples, handed on without a copy.

The batches hold the same images, labels and order as the per-sample path
(the sampler is the same), so a run computes the same losses, bit for bit.
Use it with its collate function::

    train_dataloader = dict(
        dataset=dict(type='branched_mtl.PrecollatedDataset',
                     dataset=<the data set config>),
        collate_fn=dict(type='branched_mtl.precollated_collate'), ...)

(:func:`precollate_loader` rewrites a loader config so.) A pipeline with a
random transform is refused: its samples must differ between epochs.
Training code must not change the data samples it is given (mmengine's and
our classification heads read them only).
"""
import copy
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.structures import BaseDataElement

from branched_mtl.registry import DATASETS, FUNCTIONS, build_stock
from .utils import batch_sample_ids

__all__ = ['PrecollatedDataset', 'PackedSamples', 'PackedBatch',
           'precollated_collate', 'precollate_loader']

_RANDOM_WORDS = ('Random', 'Rand', 'ColorJitter', 'PhotoMetric', 'Albu',
                 'AutoAugment', 'GaussianBlur', 'Mixup', 'CutMix')


class _Pack:
    """Every sample of a data set after its pipeline: stacked images,
    packed data samples (per device, made once) and sample ids."""

    def __init__(self, images: torch.Tensor, samples: List[Any],
                 sample_ids: List[Optional[int]]) -> None:
        self.images = images
        self.samples = {torch.device('cpu'): samples}
        self.sample_ids = sample_ids

    def samples_on(self, device: torch.device) -> List[Any]:
        if device not in self.samples:
            self.samples[device] = [s.to(device) for s in
                                    self.samples[torch.device('cpu')]]
        return self.samples[device]


class PackedSamples(BaseDataElement):
    """The data samples of one pre-collated batch: a read-only sequence of
    the data set's packed samples (``len``, indexing, iteration), moved to
    a device once per data set rather than once per batch.

    Args:
        pack: The packed data set.
        index: Positions of the batch's samples in it.
        device: Where its samples are.
    """

    def __init__(self, pack: _Pack, index: List[int],
                 device: torch.device = torch.device('cpu')) -> None:
        super().__init__()
        # plain attributes, not data fields of the element
        object.__setattr__(self, '_pack', pack)
        object.__setattr__(self, '_index', list(index))
        object.__setattr__(self, '_device', torch.device(device))

    @property
    def sample_ids(self) -> List[Optional[int]]:
        """Each sample's ``sample_idx`` (read by FrozenFeatureCacheHook)."""
        return [self._pack.sample_ids[i] for i in self._index]

    def _samples(self) -> List[Any]:
        every = self._pack.samples_on(self._device)
        return [every[i] for i in self._index]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Any:
        return self._pack.samples_on(self._device)[self._index[i]]

    def __iter__(self):
        return iter(self._samples())

    def to(self, *args, **kwargs) -> 'PackedSamples':
        device = kwargs.get('device', args[0] if args else None)
        if device is None or isinstance(device, torch.dtype):
            return self
        device = torch.device(device)
        if device == self._device:
            return self
        return PackedSamples(self._pack, self._index, device)

    def __repr__(self) -> str:
        return f'PackedSamples({len(self)} samples on {self._device})'


class PackedBatch(dict):
    """A pre-collated batch (``inputs``, ``data_samples``)."""

    def __missing__(self, key):
        raise KeyError(
            f'{key!r}: a PrecollatedDataset gives whole batches; give its '
            "loader collate_fn=dict(type='branched_mtl.precollated_collate')")


@FUNCTIONS.register_module()
def precollated_collate(data: Any) -> Any:
    """The collate function of :class:`PrecollatedDataset`: its batches
    are collated already (anything else goes to ``pseudo_collate``)."""
    if isinstance(data, PackedBatch):
        return dict(data)
    from mmengine.dataset import pseudo_collate
    return pseudo_collate(data)


def _transform_names(dataset: Any) -> List[str]:
    """Class names of the pipeline transforms of ``dataset`` (unwrapping
    ``.dataset`` wrappers such as ProbeSplit)."""
    for _ in range(8):
        pipeline = getattr(dataset, 'pipeline', None)
        if pipeline is not None:
            return [type(t).__name__ for t in getattr(pipeline, 'transforms',
                                                      [])]
        dataset = getattr(dataset, 'dataset', None)
        if dataset is None:
            break
    return []


# packed data sets of this process by config (a sweep worker's jobs read
# the same training set), the newest few
_PACKS: Dict[str, _Pack] = {}
_MAX_PACKS = 4


def _packed(key: str, builder: Any) -> _Pack:
    if key not in _PACKS:
        while len(_PACKS) >= _MAX_PACKS:
            _PACKS.pop(next(iter(_PACKS)))
        _PACKS[key] = builder()
    return _PACKS[key]


@DATASETS.register_module()
class PrecollatedDataset:
    """Serve a data set whose pipeline draws nothing at random as whole,
    pre-stacked batches (see the module's docstring).

    Args:
        dataset: The data set (a config or a built one). Its samples must
            be dicts with an image tensor ``inputs`` of one shape and
            ``data_samples``.
        lazy_init: Defer packing until the first batch (the probe checks
            build data sets only to read their records).
    """

    def __init__(self, dataset: Union[dict, Any],
                 lazy_init: bool = True) -> None:
        self._cfg = copy.deepcopy(dataset) if isinstance(dataset,
                                                         dict) else None
        if isinstance(dataset, dict):
            dataset = build_stock(copy.deepcopy(dataset), DATASETS)
        self.dataset = dataset
        self._pack: Optional[_Pack] = None
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Run the pipeline on every sample once and stack the images."""
        if self._pack is not None:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        random = [n for n in _transform_names(self.dataset)
                  if any(w in n for w in _RANDOM_WORDS)]
        if random:
            raise ValueError(f'PrecollatedDataset: the pipeline draws at '
                             f'random ({random[0]}); a pre-collated batch '
                             'would repeat one draw every epoch')
        # the same data set config in one process (a sweep worker's jobs)
        # is packed once
        key = repr(self._cfg) if self._cfg is not None else str(id(self))
        self._pack = _packed(key, self._build)

    def _build(self) -> _Pack:
        n = len(self.dataset)
        if n == 0:
            raise ValueError('PrecollatedDataset: the data set is empty')
        items = [self.dataset[i] for i in range(n)]
        again = self.dataset[0]['inputs']
        if not torch.equal(again, items[0]['inputs']):
            raise ValueError('PrecollatedDataset: sample 0 came out of the '
                             'pipeline differently twice (a random '
                             'transform); it cannot be pre-collated')
        shapes = {tuple(it['inputs'].shape) for it in items}
        if len(shapes) != 1:
            raise ValueError(f'PrecollatedDataset: images of {len(shapes)} '
                             f'shapes (e.g. {sorted(shapes)[:2]}); all must '
                             'have one to be stacked')
        images = torch.stack([it['inputs'] for it in items])
        samples = [it['data_samples'] for it in items]
        ids = [(batch_sample_ids([s]) or [None])[0] for s in samples]
        return _Pack(images, samples, ids)

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Any:
        # one sample, through the wrapped data set (hooks that index it)
        return self.dataset[idx]

    def __getitems__(self, indices: Sequence[int]) -> PackedBatch:
        """A whole batch (torch's DataLoader fetches batches this way)."""
        self.full_init()
        index = [int(i) for i in indices]
        return PackedBatch(
            inputs=self._pack.images[torch.as_tensor(index)],
            data_samples=PackedSamples(self._pack, index))


def precollate_loader(loader: Dict[str, Any]) -> Dict[str, Any]:
    """Serve a loader config's data set pre-collated (in place).

    Args:
        loader: A data loader config (``dataset``, ``collate_fn`` ...).

    Returns:
        ``loader``.
    """
    if (loader.get('dataset') or {}).get('type') in (
            'PrecollatedDataset', 'branched_mtl.PrecollatedDataset'):
        return loader
    loader['dataset'] = dict(type='branched_mtl.PrecollatedDataset',
                             dataset=loader['dataset'])
    loader['collate_fn'] = dict(type='branched_mtl.precollated_collate')
    return loader
