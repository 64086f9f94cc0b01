"""Is someone holding a flock on this file? (stdlib only: benchd's per-job supervisor and
pipeline.staged both ask, about a job's and a staged run's lock respectively.)"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path


def lock_is_held(path: Path) -> bool:
    """True when another open file description holds a flock on `path` (a missing file is
    not held). Takes the lock for an instant when it is free. Only a regular file is a lock
    file: a symlink is never followed, a FIFO never blocks the open, and either (or a
    directory) is reported not held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV):   # symlink, socket, device
            return False
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # closing releases our lock if we got it
    return False
