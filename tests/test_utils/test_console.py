"""branched_mtl.utils.console: mmengine's logger held quiet for a block,
the known harmless warnings ignored."""
import logging
import warnings

import pytest
from mmengine.logging import MMLogger

from branched_mtl.utils.console import (ignore_known_warnings, quiet_logger,
                                        quiet_known_warnings)


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def records():
    logger = MMLogger.get_current_instance()
    handler = _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_quiet_logger_holds_back_lines_below_the_level(records):
    logger, messages = records
    with quiet_logger():
        logger.info('init line')
        logger.warning('skipped op')
        logger.error('a real error')
    with quiet_logger(logging.WARNING):
        logger.info('init line 2')
        logger.warning('kept warning')
    logger.info('after')
    assert messages == ['a real error', 'kept warning', 'after']
    assert logger.level == logging.INFO


def test_quiet_logger_gives_the_level_back_after_an_error(records):
    logger, messages = records
    with pytest.raises(RuntimeError, match='boom'):
        with quiet_logger():
            raise RuntimeError('boom')
    assert logger.level == logging.INFO
    logger.info('heard')
    assert messages == ['heard']


def test_quiet_logger_nests(records):
    logger, _ = records
    with quiet_logger(logging.WARNING):
        with quiet_logger(logging.ERROR):
            assert logger.level == logging.ERROR
        assert logger.level == logging.WARNING
    assert logger.level == logging.INFO


def test_ignore_known_warnings_leaves_the_others():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        ignore_known_warnings()
        warnings.warn('Default ``avg_non_ignore`` is False, if you would '
                      'like to ignore the certain label ...')
        warnings.warn('"FileClient" will be deprecated in future.',
                      DeprecationWarning)
        warnings.warn('something the user must see')
    assert [str(w.message) for w in seen] == ['something the user must see']


def test_quiet_known_warnings_filters_the_same_warnings(monkeypatch):
    import sys
    monkeypatch.setattr(sys, 'stdout', sys.stdout)  # restored after
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        quiet_known_warnings()
        warnings.warn('``build_loss`` would be deprecated soon, please use '
                      '``mmseg.registry.MODELS.build()``')
        warnings.warn('another notice')
    assert [str(w.message) for w in seen] == ['another notice']
