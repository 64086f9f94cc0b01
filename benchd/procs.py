"""Process identity and killing helpers for the job layer (Linux /proc, stdlib only).

A pid alone is not an identity (pids are reused), so a process is named by (pid, start ticks):
field 22 of /proc/<pid>/stat. Every process of a job carries, in its environment, the job id
(JOB_ENV), a random per-job token (TOKEN_ENV) and the identity of the root that started it
(ROOT_ENV): JobMarks. A restarted benchd finds a job's processes by all three, even after
they escaped the process group (setsid, double fork) or lost their supervisor; never by the
job id alone, which a copy of logs/ (a backup, a snapshot, a test copy) carries too.
A process that clears its environment AND leaves the job's process group cannot be found this
way (only a cgroup would hold it): callers must not claim "all killed".
Imported by the per-job supervisor: keep it stdlib only and cheap to import (no dataclasses,
secrets: they cost the start path ~20 ms).
"""
from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path
from typing import NamedTuple

from pipeline.lockprobe import lock_holders, lock_is_held_by_us  # noqa: F401  (stdlib only)

# A job's lock (logs/jobs/<id>.lock) counts as held only when a process of benchd's user holds
# it: its supervisor. Supervisors make it 0600, but one an older benchd made is group-readable,
# and a group member's flock on it must not make a dead job look alive.
lock_is_held = lock_is_held_by_us

JOB_ENV = "BENCHD_JOB_ID"
TOKEN_ENV = "BENCHD_JOB_TOKEN"   # secrets.token_hex(16), one per job instance
ROOT_ENV = "BENCHD_ROOT_ID"      # root_identity() of the root that started the job
_PR_SET_CHILD_SUBREAPER = 36


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None if the pid is gone.
    The command name (field 2) may contain spaces and ')', so split after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data[data.rfind(b")") + 2:].decode("ascii", "replace").split()


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (None if it does not exist)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, ticks: int | None) -> bool:
    """True when `pid` exists, is not a zombie, and (if given) started at `ticks`."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


def set_child_subreaper() -> None:
    """Make orphaned descendants reparent to this process (prctl PR_SET_CHILD_SUBREAPER)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _children(pid: int) -> list[int]:
    """Direct children of `pid` from /proc/<pid>/task/*/children (cheap: no full scan)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def _has_children_files() -> bool:
    me = os.getpid()
    return os.path.exists(f"/proc/{me}/task/{me}/children")


def descendants(root_pid: int) -> list[int]:
    """Every live descendant of `root_pid` (children, grandchildren, ...). Walks the
    children files when the kernel has them, else scans all of /proc once."""
    if _has_children_files():
        out: list[int] = []
        todo = _children(root_pid)
        while todo:
            pid = todo.pop()
            if is_alive(pid, None):
                out.append(pid)
            todo.extend(_children(pid))
        return out
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(pid)
    out = []
    todo = list(children.get(root_pid, ()))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def pids_with_env(name: str, value: str, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Live processes whose environment carries name=value, wherever they went (setsid,
    reparenting). Processes we may not read (other users, when not root) are skipped."""
    needle = f"{name}={value}".encode()
    found = []
    for pid in _all_pids():
        if pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and is_alive(pid, None):
            found.append(pid)
    return found


def pids_with_marker(job_id: str, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Live processes carrying JOB_ENV=<job_id> (tests and diagnostics: benchd itself finds a
    job's processes with job_pids, which a copied root cannot confuse)."""
    return pids_with_env(JOB_ENV, job_id, exclude)


def root_identity(root: Path) -> str:
    """"<st_dev>:<st_ino>" of a root directory: the one thing about a root that a copy of it
    (cp, rsync, tar: a new directory) or a snapshot (a new device) cannot carry, and that a
    rename on the same filesystem keeps."""
    st = os.stat(root)
    return f"{st.st_dev}:{st.st_ino}"


def cwd_identity(pid: int) -> str | None:
    """root_identity() of the working directory of `pid` (None if unreadable or gone)."""
    try:
        st = os.stat(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def _environ(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


class JobMarks(NamedTuple):
    """How benchd recognises one job instance's processes: the job id, its token and the
    identity of THIS root. `token` is None for a record written before tokens existed; then
    a process counts as the job's only if it carries JOB_ENV=<id> and its working directory
    is this root (the supervisor starts the job there and the pipeline never leaves it), so
    that the old, id-only match still never reaches into another root."""
    job_id: str
    token: str | None
    root_id: str

    def env(self) -> dict[str, str]:
        """The variables that mark the job's processes (set by benchd for its supervisor)."""
        out = {JOB_ENV: self.job_id, ROOT_ENV: self.root_id}
        if self.token is not None:
            out[TOKEN_ENV] = self.token
        return out

    def _needles(self) -> list[bytes]:
        return [f"{k}={v}".encode() for k, v in self.env().items()]

    def carried_by(self, pid: int) -> bool:
        """True when `pid` is provably this job's (its environment is readable and has every
        mark; legacy: the id and a cwd in this root). False when unreadable or cleared."""
        env = _environ(pid)
        if env is None:
            return False
        if self.token is None:
            return f"{JOB_ENV}={self.job_id}".encode() in env \
                and cwd_identity(pid) == self.root_id
        return all(n in env for n in self._needles())


def job_pids(marks: JobMarks, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Live processes that carry `marks` (see JobMarks.carried_by), wherever they went."""
    needle = f"{JOB_ENV}={marks.job_id}".encode()
    found = []
    for pid in _all_pids():
        if pid in exclude:
            continue
        env = _environ(pid)
        if env is None or needle not in env:  # cheap filter before the full check
            continue
        if marks.carried_by(pid) and is_alive(pid, None):
            found.append(pid)
    return found


def command_name(pid: int) -> str:
    """/proc/<pid>/comm, for a person reading what was killed ("?" when gone)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def pgid_of(pid: int) -> int | None:
    """Process group of `pid` (None if it is gone)."""
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is `pgid` (a full /proc scan)."""
    out = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(pid)
    return out


def kill_pids(pids: list[int], sig: int) -> int:
    """Send `sig` to each pid, ignoring ones already gone; returns how many were signalled."""
    n = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            n += 1
        except ProcessLookupError:
            pass
    return n


def kill_group(pgid: int, sig: int) -> bool:
    """killpg, False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_wait_status(status: int) -> tuple[int | None, str | None, str | None]:
    """(exit_code, signal name, reason) from a waitpid status; reason is None for exit 0."""
    if os.WIFSIGNALED(status):
        name = signal_name(os.WTERMSIG(status))
        return None, name, f"killed by {name}"
    code = os.waitstatus_to_exitcode(status)
    return code, None, (None if code == 0 else f"exited with code {code}")
