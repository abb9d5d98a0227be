"""Errors in what the user gave (a file, an option, a config value).

Tools print a :class:`UserError` as one ``tool: error: ...`` line and exit
with status 2: the message names what is at fault and says what to do, so a
traceback would only hide it. Any other exception is a bug and keeps its
traceback.
"""
from typing import Any

__all__ = ['UserError', 'CheckpointError', 'CheckpointMissing', 'WorkDirBusy',
           'short_repr']


class UserError(ValueError):
    """A bad input, reported without a traceback.

    A ``ValueError`` so that code which already refuses bad values with
    ``ValueError`` treats both alike.
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read or written; names the file."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """A checkpoint file that does not exist (also a FileNotFoundError)."""


class WorkDirBusy(UserError):
    """Another process runs in the same work dir; names that process."""


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters.

    Error messages quote user values; a 100,000-character task name must
    not turn into a 200 KB message.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f'{text[:limit]}... ({len(text)} characters)'
