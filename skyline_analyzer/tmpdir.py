"""``SKYLINE_TMP_DIR``: the Analyzer's private scratch directory (docs/analyzer.md#the-private-tmp-directory).

Only the daemon's user may place anything there: the directory is created 0700, and an existing one must be
a directory (not a symbolic link) owned by the daemon's effective uid that neither its group nor others may
write. Files in it are opened with ``O_NOFOLLOW``, so a symbolic link found there is never followed: a
daemon running as root cannot be made to write, truncate or read another file through one.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from skyline_analyzer.exceptions import UnsafeDirectoryError

#: Added to every open of a file in the directory: no link is followed, no FIFO blocks the open.
SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Mode of the files created there.
FILE_MODE = 0o600


def ensure_private(path: Path) -> None:
    """Create ``path`` 0700 when missing; raise :class:`UnsafeDirectoryError` when it is not private.

    Missing parents are created with the usual permissions. An existing directory that is ours and writable
    by no one else but readable by others is made 0700.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnsafeDirectoryError(f"SKYLINE_TMP_DIR {path} cannot be created: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if path.is_symlink():
            raise UnsafeDirectoryError(f"SKYLINE_TMP_DIR {path} is a symbolic link: name the directory") from None
        if exc.errno == errno.ENOTDIR:
            raise UnsafeDirectoryError(f"SKYLINE_TMP_DIR {path} is not a directory") from None
        raise UnsafeDirectoryError(f"SKYLINE_TMP_DIR {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        uid = os.geteuid()
        if info.st_uid != uid:
            raise UnsafeDirectoryError(
                f"SKYLINE_TMP_DIR {path} is owned by uid {info.st_uid}, not by this daemon's uid {uid}: "
                "it must be private to the daemon's user")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise UnsafeDirectoryError(
                f"SKYLINE_TMP_DIR {path} can be written by its group or by others (mode {mode:04o}): "
                "it must be private to the daemon's user (mode 0700)")
        if mode != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def open_file(path: Path, flags: int) -> int:
    """``os.open`` for a file in the directory: never through a symbolic link, only a regular file."""
    fd = os.open(path, flags | SAFE_FLAGS, FILE_MODE)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def write(path: Path, data: bytes, *, append: bool = False) -> None:
    """Write ``data`` in one ``write`` call: appended with ``O_APPEND``, else replacing the contents."""
    fd = open_file(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    fd = open_file(path, os.O_RDONLY)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def is_foreign(path: Path) -> bool:
    """True when ``path`` exists and is not a regular file (a symbolic link, a FIFO, a directory...)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
