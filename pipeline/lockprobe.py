"""Is someone holding a flock on this file, and who? (stdlib only: benchd's per-job supervisor
and pipeline.staged both ask, about a job's and a staged run's lock respectively.)

Who holds a lock comes from the kernel (/proc/locks, /proc/<pid>/fdinfo), not from anything
written in the file: a pid written there is whatever the last holder wrote, and names a dead
process once that holder is gone.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pwd
import stat
from dataclasses import dataclass, replace
from pathlib import Path

PROC_LOCKS = "/proc/locks"
MAX_COMMAND = 200   # characters of a holder's command line kept for a message


@dataclass(frozen=True)
class LockHolder:
    """A process holding a lock. uid/user/command are None when /proc/<pid> cannot be read
    (the process is gone, or hidden from us: ProtectProc=invisible hides other users').
    `confirmed`: seen holding it through its fds, not only named by /proc/locks."""
    pid: int
    uid: int | None
    user: str | None
    command: str | None
    confirmed: bool = True

    def describe(self) -> str:
        """'pid 123 (user alice, command "sleep 10")' for an error message."""
        if self.uid is None:
            return f"pid {self.pid} (gone, or another user's process hidden from us)"
        return f"pid {self.pid} (user {self.user}, command {self.command!r})"


def lock_is_held(path: Path) -> bool:
    """True when another open file description holds a flock on `path` (a missing file is
    not held). Takes the lock for an instant when it is free. Only a regular file is a lock
    file: a symlink is never followed, a FIFO never blocks the open, and either (or a
    directory) is reported not held. A file we may not open (another user's, mode 0600) is
    asked about through /proc/locks instead."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except PermissionError:
        try:
            return bool(lock_holders(path))
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
    return any(h.confirmed and h.uid in trusted for h in holders)


def lock_holders(path: Path) -> list[LockHolder]:
    """The processes holding a lock on `path`. A process we can look into holds it when one
    of its fds is open on the file and that fd's /proc/<pid>/fdinfo lists a lock (the kernel
    shows there the locks of that open file description, however it was inherited). Pids in
    /proc/locks for the file's inode that we cannot look into (gone, or another user's hidden
    by ProtectProc=invisible) are added unconfirmed, with their user and command if /proc
    shows them (never trusted by lock_is_held_by_us). /proc/locks alone is not enough:
    on overlayfs it numbers the device differently from stat, and it names the process that
    took the lock, which may have exited leaving the lock to a child.
    FileNotFoundError: no such file."""
    st = os.stat(path)
    listed = _listed_pids(st.st_ino)
    pids = [pid for pid in sorted(listed) if _holds(pid, st)]
    unseen = [pid for pid in sorted(listed) if not _can_look_into(pid)]
    if not pids:    # the lockers are gone or hidden: whoever we can see holding it instead
        pids = [pid for pid in _all_pids() if pid not in listed and _holds(pid, st)]
        if pids:
            unseen = []     # gone, having left the lock to these
    return ([_holder(pid) for pid in pids]
            + [replace(_holder(pid), confirmed=False) for pid in unseen])


def _can_look_into(pid: int) -> bool:
    """Can we list `pid`'s fds? (Not when it is gone, hidden, or another user's.)"""
    try:
        os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    return True


def _listed_pids(ino: int) -> set[int]:
    """Pids /proc/locks names for a file with inode number `ino`, on any device (overlayfs
    numbers devices there differently from stat, so only _holds can confirm one)
    ("1: FLOCK ADVISORY WRITE 123 08:01:4567 0 EOF"; a waiter's line has '->' after the
    id)."""
    pids: set[int] = set()
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return pids
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or not fields[4].isdigit():
            continue
        if fields[5].rpartition(":")[2] == str(ino):
            pids.add(int(fields[4]))
    return pids


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _holds(pid: int, st: os.stat_result) -> bool:
    """Has `pid` an fd open on the file `st` that holds a lock? (False if we cannot look.)"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if not os.path.samestat(os.stat(f"/proc/{pid}/fd/{fd}"), st):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
                if b"\nlock:" in f.read():
                    return True
        except OSError:
            continue
    return False


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
