"""What the task check reads from built data sets (through wrappers)."""
from branched_mtl.datasets import MultiDigits, ProbeSplit
from branched_mtl.engine.hooks.reliability_hooks import dataset_tasks


def test_dataset_tasks_through_wrappers():
    source = dict(type='MultiDigits', split='train', num_samples=24,
                  tasks=['left', 'sum'])
    assert dataset_tasks(MultiDigits(**{k: v for k, v in source.items()
                                        if k != 'type'})) == ['left', 'sum']
    part = ProbeSplit(dataset=source, part='train', num_samples=8)
    assert dataset_tasks(part) == ['left', 'sum']
    from mmengine.dataset import ConcatDataset
    both = ConcatDataset([MultiDigits(num_samples=8, tasks=['left']),
                          MultiDigits(num_samples=8, tasks=['sum'])],
                         ignore_keys=['tasks'])
    assert dataset_tasks(both) == ['left', 'sum']

    class Anonymous:
        metainfo = {}
    assert dataset_tasks(Anonymous()) is None
