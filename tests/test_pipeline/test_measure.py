"""measure_model: an architecture is measured once per process, however
its config reaches it (the report's in-memory config, the comparison's
re-read dump of the same model)."""
import os.path as osp

from mmengine.config import Config

import branched_mtl.pipeline.measure as measure
from branched_mtl.registry import MODELS

CONFIG = 'configs/multidigits/resnet18-thin_all-shared_multidigits.py'
SHAPE = (3, 32, 64)


def _counting_build(monkeypatch) -> list:
    """The whole models built (not their parts, built by the same call)."""
    built = []
    build = MODELS.build
    depth = [0]

    def counted(cfg, *args, **kwargs):
        if depth[0] == 0:
            built.append(cfg)
        depth[0] += 1
        try:
            return build(cfg, *args, **kwargs)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(measure.MODELS, 'build', counted)
    return built


def test_the_same_model_from_a_dumped_config_is_measured_once(
        tmp_path, monkeypatch):
    monkeypatch.setattr(measure, '_MEASURED', {})
    built = _counting_build(monkeypatch)
    cfg = Config.fromfile(CONFIG)
    first = measure.measure_model(cfg, SHAPE, batch_size=2, repeats=1)
    dump = osp.join(tmp_path, 'config.py')
    cfg.dump(dump)
    again = measure.measure_model(Config.fromfile(dump), SHAPE,
                                  batch_size=2, repeats=1)
    assert len(built) == 1
    assert again == first and first['params'] > 0 and first['flops'] > 0
    again['params'] = -1  # a caller's change stays its own
    assert measure.measure_model(cfg, SHAPE, batch_size=2,
                                 repeats=1)['params'] == first['params']


def test_another_architecture_or_shape_is_measured_again(monkeypatch):
    monkeypatch.setattr(measure, '_MEASURED', {})
    built = _counting_build(monkeypatch)
    cfg = Config.fromfile(CONFIG)
    first = measure.measure_model(cfg, SHAPE, batch_size=2, repeats=1)
    # a narrower stem: fewer parameters, which a stale entry would hide
    narrow = Config.fromfile(CONFIG)
    narrow.model.encoder.backbone.stem_channels = 8
    other = measure.measure_model(narrow, SHAPE, batch_size=2, repeats=1)
    assert other['params'] < first['params']
    bigger = measure.measure_model(cfg, (3, 64, 64), batch_size=2,
                                   repeats=1)
    assert bigger['flops'] > first['flops']
    assert len(built) == 3
