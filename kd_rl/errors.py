"""kd_rl's own exceptions: a problem the user can fix, said in one sentence.

The CLI prints a `KdRlError` as one line on stderr and exits with status 2.
Anything else that escapes a command is a bug (or a library's failure kd_rl did
not foresee) and is reported as an internal error, exit status 1, with the
``--debug`` hint; an ``OSError`` (a missing file, a folder that may not be
written, a full disk) is the user's machine speaking and exits with 2 too.

`KdRlError` is a ``ValueError``, so ``except ValueError`` keeps working for code
written before it existed. This module imports nothing: every kd_rl module may
import it.
"""

from __future__ import annotations

__all__ = ["KdRlError", "MissingDependency", "ResumeRefused"]


class KdRlError(ValueError):
    """Bad input kd_rl recognised: a setting out of range, a file or environment it cannot use."""


class ResumeRefused(KdRlError):
    """A ``--resume`` that would mix two runs (other settings, another teacher, fewer steps) or
    read a checkpoint of a newer kd_rl; nothing was restored or written."""


class MissingDependency(KdRlError, ImportError):
    """An optional package a feature needs is not installed; the message names the install command."""
