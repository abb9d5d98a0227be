"""A readable console for our tools: known harmless notices left out.

Only the tools call :func:`quiet_known_warnings`; importing branched_mtl
filters nothing, so a user's own program sees every warning. Each notice
below is harmless with the pinned stack (``../shared/STACK.md``):

* mmcv-lite warns at import that it lacks the compiled
  ``MultiScaleDeformableAttention``, which no model here uses (an op that
  is used fails with a clear message, see :mod:`branched_mtl.compat`);
* mmengine's own CheckpointHook still builds a ``FileClient`` (and with it
  a ``HardDiskBackend``), which log their deprecation at every training;
* mmseg's decode heads (every dense head) build their losses with mmseg's
  deprecated ``build_loss`` and its ``CrossEntropyLoss`` notes its default
  ``avg_non_ignore=False``, once per model built.

mmcv warns while ``branched_mtl`` is being imported, before this module can
be imported, so a tool filters that one itself first (as tools/train.py)::

    import warnings
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    import branched_mtl
    from branched_mtl.utils.console import quiet_known_warnings
    ...
    if __name__ == '__main__':
        quiet_known_warnings()
        main()

:func:`quiet_logger` is for library code too: it holds back mmengine's
lines below a level for one block (a parameter's init, an op a FLOP
counter skips) and restores the logger's level after.
"""
import contextlib
import logging
import re
import sys
import warnings
from typing import Any, Iterator, Tuple

#: The start of mmcv-lite's import-time warning.
MMCV_LITE_NOTICE = 'Fail to import ``MultiScaleDeformableAttention``'

#: Text that marks a known harmless notice (a warning or a log line).
KNOWN_NOTICES: Tuple[str, ...] = (
    MMCV_LITE_NOTICE,
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    # mmseg's decode heads build their losses through its own deprecated
    # helper and warn about CrossEntropyLoss's stock default, per model
    '``build_loss`` would be deprecated soon',
    'Default ``avg_non_ignore`` is False',
)


def is_known_notice(text: str) -> bool:
    """Whether ``text`` holds one of :data:`KNOWN_NOTICES`."""
    return any(notice in text for notice in KNOWN_NOTICES)


class KnownNoticeFilter:
    """A text stream that drops the log lines of known harmless notices.

    mmengine's loggers print to the ``sys.stdout`` of the moment they are
    created (one per runner), so the filter sits on the stream; the log
    file in the work dir keeps every line.

    Args:
        stream: The stream to write to (the console).
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        # a logger writes one record per call; longer text is never dropped
        if text.count('\n') <= 1 and is_known_notice(text):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def ignore_known_warnings() -> None:
    """Ignore the Python warnings among :data:`KNOWN_NOTICES` (the log lines
    are left as they are; :func:`quiet_known_warnings` drops both).

    For tools whose ``main`` is also called in-process (the benchmarks);
    safe to call more than once.
    """
    for notice in KNOWN_NOTICES:
        warnings.filterwarnings('ignore', message=re.escape(notice))


def quiet_known_warnings() -> None:
    """Leave :data:`KNOWN_NOTICES` out of this process's console.

    For our tools only (call it in ``main``, before any runner is built);
    safe to call more than once.
    """
    ignore_known_warnings()
    if not isinstance(sys.stdout, KnownNoticeFilter):
        sys.stdout = KnownNoticeFilter(sys.stdout)


@contextlib.contextmanager
def quiet_logger(level: int = logging.ERROR) -> Iterator[None]:
    """mmengine's current logger lets only records of ``level`` and above
    through inside the block, and gets its own level back after (an
    exception included).

    mmengine logs a line per initialised parameter at ``INFO`` (held back
    by ``logging.WARNING``), and its FLOP analysis warns about every op it
    does not count (held back by the default, ``logging.ERROR``).

    Args:
        level: The lowest level let through.
    """
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
