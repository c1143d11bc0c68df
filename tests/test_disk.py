"""A full disk is recognised however it arrives and reported naming the file system and file."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from vanishing import disk


def raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` as it is after ``raise exc from cause`` (its __cause__ set)."""
    try:
        raise exc from cause
    except BaseException as e:  # noqa: BLE001 - returned for inspection
        return e


def test_full_disk_errors_are_recognised_through_wrapping():
    assert disk.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    # as MLflow re-raises SQLAlchemy's error that wraps sqlite3's
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    wrapped = raised(
        RuntimeError("API request failed"), raised(ValueError("(sqlite3...)"), sqlite_full)
    )
    assert disk.is_disk_full(wrapped)
    assert not disk.is_disk_full(wrapped, sqlite=False)  # a server's disk is not ours
    assert not disk.is_disk_full(raised(RuntimeError("x"), ValueError("database is locked")))


def test_mount_point_of_a_path_not_yet_created(tmp_path):
    assert disk.mount_point(tmp_path / "not" / "yet") == disk.mount_point(tmp_path)
    assert os.path.ismount(disk.mount_point(tmp_path))
    assert disk.mount_point("/") == disk.mount_point("/proc/..")


def test_writing_names_the_file_and_leaves_other_errors_alone(tmp_path):
    target = tmp_path / "table.csv"
    with pytest.raises(disk.DiskFull) as err:
        with disk.writing(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    said = str(err.value)
    assert said.startswith(f"No space left on device on {disk.mount_point(tmp_path)} (")
    assert said.endswith(f"bytes free) while writing {target}")
    with pytest.raises(KeyError):
        with disk.writing(target):
            raise KeyError("not a disk problem")
    with pytest.raises(sqlite3.OperationalError):  # path None: a tracking server's disk
        with disk.writing(None):
            raise sqlite3.OperationalError("database or disk is full")
