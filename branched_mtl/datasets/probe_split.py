"""ProbeSplit: a deterministic held-out part of a training set.

Every decision of the method (the affinity probe, the tournament's recombined
runs, the best checkpoint, early stopping) reads the ``probe`` part; the
models train on the ``train`` part, the rest of the training set. The two
parts of one ``(dataset, num_samples, seed)`` never share a sample and are the
same in every run, so the test split is read only by each model's final test.

Configs name it like mmengine's dataset wrappers::

    source = dict(type='branched_mtl.MultiDigits', split='train', ...)
    probe_split = dict(num_samples=500, seed=0)
    train_dataloader = dict(dataset=dict(
        type='branched_mtl.ProbeSplit', part='train', **probe_split,
        dataset=dict(**source, pipeline=train_pipeline)))
    val_dataloader = dict(dataset=dict(
        type='branched_mtl.ProbeSplit', part='probe', **probe_split,
        dataset=dict(**source, pipeline=test_pipeline)))
"""
import copy
from typing import Any, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from branched_mtl.registry import DATASETS, build_stock

PARTS = ('train', 'probe')


def probe_indices(dataset_len: int, num_samples: int,
                  seed: int = 0) -> List[int]:
    """The sorted indices of the probe part of a training set.

    Args:
        dataset_len: Length of the whole training set.
        num_samples: Size of the probe part.
        seed: Seed of the draw (a private generator).

    Returns:
        ``num_samples`` sorted indices in ``[0, dataset_len)``.
    """
    if isinstance(num_samples, bool) or not isinstance(
            num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f'ProbeSplit: num_samples must be an int >= 1, got '
                         f'{num_samples!r}')
    if num_samples >= dataset_len:
        raise ValueError(
            f'ProbeSplit: num_samples={num_samples} leaves no training '
            f'samples in a training set of {dataset_len}')
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(
        dataset_len, int(num_samples), replace=False))


@DATASETS.register_module()
class ProbeSplit:
    """One part of a training set split into ``train`` and ``probe``.

    Args:
        dataset: The whole training set (a config or a built dataset); give
            it the pipeline the part needs (augmentation for ``train``, the
            test pipeline for ``probe``).
        part: ``'train'`` (the rest) or ``'probe'`` (the held-out part).
        num_samples: Size of the probe part.
        seed: Seed of the split.
        indices: Optional subset of the part (an int: the first ``indices``
            samples; a list: positions in the part), as
            :class:`mmengine.dataset.BaseDataset`'s ``indices``.
        lazy_init: Defer building the split until first use.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 part: str = 'train',
                 num_samples: int = 500,
                 seed: int = 0,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 lazy_init: bool = False) -> None:
        if part not in PARTS:
            raise ValueError(f'ProbeSplit: part must be one of {PARTS}, got '
                             f'{part!r}')
        if isinstance(dataset, dict):
            dataset = build_stock(copy.deepcopy(dataset), DATASETS)
        self.dataset = dataset
        self.part = part
        self.num_samples = num_samples
        self.seed = seed
        self._subset = indices
        self._fully_initialized = False
        self._indices: List[int] = []
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Draw the split (and the optional subset of the part)."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        n = len(self.dataset)
        probe = probe_indices(n, self.num_samples, self.seed)
        if self.part == 'probe':
            part = probe
        else:
            held = set(probe)
            part = [i for i in range(n) if i not in held]
        if self._subset is not None:
            part = self._select(part, self._subset)
        self._indices = part
        self._fully_initialized = True

    def _select(self, part: List[int],
                subset: Union[int, Sequence[int]]) -> List[int]:
        if isinstance(subset, (int, np.integer)):
            if not 0 < subset <= len(part):
                raise ValueError(
                    f'ProbeSplit: indices={subset} must be in [1, '
                    f'{len(part)}] (the {self.part} part\'s length)')
            return part[:int(subset)]
        positions = [int(i) for i in subset]
        bad = [i for i in positions if not 0 <= i < len(part)]
        if bad or not positions:
            raise ValueError(
                f'ProbeSplit: indices {bad[:5]} out of range for the '
                f'{self.part} part of {len(part)} samples')
        return [part[i] for i in positions]

    @property
    def source_indices(self) -> List[int]:
        """Indices of this part's samples in the whole training set."""
        self.full_init()
        return list(self._indices)

    def get_data_info(self, idx: int) -> dict:
        self.full_init()
        return self.dataset.get_data_info(self._indices[idx])

    def __getitem__(self, idx: int) -> Any:
        self.full_init()
        return self.dataset[self._indices[idx]]

    def __len__(self) -> int:
        self.full_init()
        return len(self._indices)
