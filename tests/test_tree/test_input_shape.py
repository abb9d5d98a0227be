"""The shape of one input image, read from a data set config: one reader
(tree.flops.dataset_input_shape) for the report, the FLOPs budget and the
projects' searches."""
import copy

import pytest
from mmengine.config import Config

from branched_mtl.pipeline.measure import input_shape
from branched_mtl.tree.flops import config_input_shape, dataset_input_shape

PACK = dict(type='mmpretrain.PackMultiTaskInputs',
            multi_task_fields=('gt_label', ))


def _digits(split: str, scale=None) -> dict:
    """A small MultiDigits set (32 x 64 images), resized to ``scale``
    (w, h) by its pipeline."""
    pipeline = [PACK] if scale is None else [
        dict(type='mmpretrain.Resize', scale=scale), PACK]
    return dict(type='branched_mtl.MultiDigits', split=split, num_samples=4,
                pipeline=pipeline)


def _cfg(test: dict) -> Config:
    return Config(dict(train_dataloader=dict(dataset=_digits('train')),
                       test_dataloader=dict(dataset=test)))


def test_the_shape_the_pipeline_gives():
    dataset = _digits('val', scale=(96, 40))
    before = copy.deepcopy(dataset)
    shape = dataset_input_shape(dataset)
    assert shape == (3, 40, 96)
    assert all(type(s) is int for s in shape)
    assert dataset == before  # built from a copy
    assert dataset_input_shape(_digits('train')) == (3, 32, 64)


def test_the_config_readers_read_the_test_set():
    cfg = _cfg(_digits('test', scale=(48, 24)))
    assert config_input_shape(cfg) == (3, 24, 48)
    assert input_shape(cfg) == (3, 24, 48)


def test_an_unreadable_test_set():
    cfg = _cfg(dict(_digits('test'), split='nope'))
    # the tools' reader says what to do
    with pytest.raises(ValueError, match=r'could not be loaded \(ValueError: '
                       r".*split must be one of.*give it as C,H,W "
                       r'\(--input-shape\)'):
        config_input_shape(cfg)
    # the report's reader raises the error as it is
    with pytest.raises(ValueError, match=r'^MultiDigits: split must be one '):
        input_shape(cfg)
