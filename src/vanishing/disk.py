"""A full disk, said plainly: which file system is full, and what was being written to it.

A full disk reaches Python as ``OSError`` with ``ENOSPC`` (or ``EDQUOT``, a quota) from a write,
and from an embedded MLflow store as SQLite's "database or disk is full", wrapped by SQLAlchemy
and MLflow. ``writing(path)`` turns either, raised inside its block, into ``DiskFull`` with a
message that names the mount point, the bytes left on it and ``path`` (give the SQLite file of an
embedded store; None, for a tracking server, whose disk is not ours, turns nothing).
Standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = "database or disk is full"
NEARLY_FULL_BYTES = 1 << 20  # less than this left after a failure: say the disk is full


class DiskFull(Exception):
    """A write failed because the file system holding ``path`` is full."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(os.path.abspath(path))
        super().__init__(message(self.path))


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds ``path`` (or would, once created)."""
    p = Path(os.path.abspath(path))
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged write may still use on the file system of ``path``."""
    return shutil.disk_usage(mount_point(path)).free


def message(path: str | os.PathLike) -> str:
    mount = mount_point(path)
    free = free_bytes(mount)
    return f"No space left on device on {mount} ({free} bytes free) while writing {path}"


def is_disk_full(exc: BaseException | None, sqlite: bool = True) -> bool:
    """True if ``exc``, or an exception it was raised from or while handling, says a local disk
    is full; with ``sqlite``, SQLite's "database or disk is full" counts (in any exception's
    text: MLflow re-raises SQLAlchemy's errors as its own)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if sqlite and SQLITE_FULL in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def writing(path: str | os.PathLike | None):
    """Raise ``DiskFull(path)`` for a full-disk error raised inside the block (none if ``path``
    is None)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        if path is not None and is_disk_full(e):
            raise DiskFull(path) from e
        raise
