"""Read a small file that someone may have damaged or replaced: at most `limit` bytes, never
through a symlink, never blocking on a FIFO, regular files only.

benchd reads its job files (logs/jobs/) and the results it serves through this, so that a
1 TiB sparse record, a FIFO, a directory or a symlink to /dev/zero in the place of one is
refused in one fstat instead of exhausting memory or hanging the reader. Stdlib only and
import-light (benchd's per-job supervisor reads its cancel order with it).
"""
from __future__ import annotations

import errno
import os
import stat

MiB = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnreadableFile(OSError):
    """The path exists but is not a regular file of at most the limit: a caller treats it as
    damaged. `why` says what it is instead ("a directory", "larger than 1 MiB", ...)."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(f"{os.fspath(path)} is {why}" if why.startswith("a")
                         else f"{os.fspath(path)}: {why}")
        self.path = os.fspath(path)
        self.why = why


def describe_mode(mode: int) -> str:
    """What a non-regular file is, for a person: "a directory", "a FIFO", ..."""
    for test, what in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


def size_text(n: int) -> str:
    """1048576 -> "1 MiB" (limits in messages read as people set them)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def read_small_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole content of the regular file `path` (at most `limit` bytes).

    FileNotFoundError when it does not exist; UnreadableFile when it is a symlink, directory,
    FIFO, socket or device, or larger than `limit` (checked on the open file, so a file
    swapped in after a check is caught too); other OSErrors (EACCES, EIO) as they come."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
            try:   # a symlink (O_NOFOLLOW), a socket or a device: say which
                why = describe_mode(os.lstat(path).st_mode)
            except OSError:
                why = "not a regular file"
            raise UnreadableFile(path, why) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(path, describe_mode(st.st_mode))
        too_big = UnreadableFile(path, f"larger than {size_text(limit)}")
        if st.st_size > limit:
            raise too_big
        chunks: list[bytes] = []
        got = 0
        while got <= limit:   # it may grow after the fstat: never read past limit + 1
            chunk = os.read(fd, limit + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise too_big
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_small_text(path: str | os.PathLike[str], limit: int) -> str:
    """read_small_file decoded as UTF-8 (UnicodeDecodeError, a ValueError, when it is not)."""
    return read_small_file(path, limit).decode("utf-8")


__all__ = ["MiB", "UnreadableFile", "describe_mode", "read_small_file", "read_small_text",
           "size_text"]
