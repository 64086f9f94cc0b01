"""Is someone holding a flock on this file, and who? (stdlib only: benchd's per-job supervisor
and pipeline.staged both ask, about a job's and a staged run's lock respectively.)

Who holds a lock comes from /proc/locks (the pid that took it, and the file's device and
inode), not from anything written in the file: a pid written there is whatever the last
holder wrote, and names a dead process once that holder is gone.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

PROC_LOCKS = "/proc/locks"
MAX_COMMAND = 200   # characters of a holder's command line kept for a message


@dataclass(frozen=True)
class LockHolder:
    """A process holding a lock. uid/user/command are None when /proc/<pid> cannot be read
    (the process is gone, or hidden from us: ProtectProc=invisible hides other users')."""
    pid: int
    uid: int | None
    user: str | None
    command: str | None

    def describe(self) -> str:
        """'pid 123 (user alice, command "sleep 10")' for an error message."""
        if self.uid is None:
            return f"pid {self.pid} (gone, or another user's process hidden from us)"
        return f"pid {self.pid} (user {self.user}, command {self.command!r})"


def lock_is_held(path: Path) -> bool:
    """True when another open file description holds a flock on `path` (a missing file is
    not held). Takes the lock for an instant when it is free. A file we may not open (another
    user's, mode 0600) is asked about through /proc/locks instead."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except PermissionError:
        try:
            return bool(lock_holders(path))
        except FileNotFoundError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # closing releases our lock if we got it
    return False


def lock_is_held_by_us(path: Path) -> bool:
    """True when a process of our own user (or root) holds a flock on `path`. For lock files
    other users may have opened (made group-readable by an older benchd): their flock on it
    must not count as an orchestrator or supervisor at work."""
    if not lock_is_held(path):
        return False
    try:
        holders = lock_holders(path)
    except FileNotFoundError:
        return False
    trusted = {0, os.geteuid()}
    return any(h.uid in trusted for h in holders)


def lock_holders(path: Path) -> list[LockHolder]:
    """The processes holding a lock (flock or POSIX) on `path`, from /proc/locks (waiters
    are not holders). /proc/locks names the process that took the lock; when none of those
    can be seen (gone, the lock living on in an fd a child inherited), the processes we can see
    with the file open are named instead. FileNotFoundError: no such file."""
    st = os.stat(path)
    pids = _locking_pids(st)
    holders = [_holder(pid) for pid in sorted(pids)]
    if pids and all(h.uid is None for h in holders):
        heirs = [_holder(pid) for pid in sorted(_pids_with_open(st) - pids)]
        holders = [h for h in heirs if h.uid is not None] or holders
    return holders


def _locking_pids(st: os.stat_result) -> set[int]:
    """Pids /proc/locks names for the file `st` ("1: FLOCK ADVISORY WRITE 123 08:01:4567 0
    EOF"; a waiter's line has '->' after the id)."""
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return pids
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        if fields[5] == want and fields[4].lstrip("-").isdigit():
            pids.add(int(fields[4]))
    return pids


def _holder(pid: int) -> LockHolder:
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return LockHolder(pid, None, None, None)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    command = " ".join(a.decode(errors="replace") for a in argv)[:MAX_COMMAND] or "?"
    return LockHolder(pid, uid, user, command)


def _pids_with_open(st: os.stat_result) -> set[int]:
    """Processes (those we may look into) with an fd open on the file `st`."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                fst = os.stat(f"/proc/{name}/fd/{fd}")
            except OSError:
                continue
            if fst.st_ino == st.st_ino and fst.st_dev == st.st_dev:
                found.add(int(name))
                break
    return found
