"""The local executor: one supervisor process per job (benchd.supervisor), the job in its
own process group, everything found again after a benchd restart by the job's lock, pid file,
exit record and environment marks. The code that spawns, signals and kills job processes
lives here and in benchd.supervisor/benchd.procs only.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchd import cgroups, procs
from benchd.defaults import JOB_START_TIMEOUT_S
from benchd.cpusets import format_cpu_list
from benchd.executors import Handle, JobLimits, Started
from benchd.schema import CancelOrder, ExitRecord, SupervisorInfo
from benchd.store import Store
from pipeline.checkpoint import CHECKPOINT_ENV

log = logging.getLogger(__name__)

START_TIMEOUT_S = JOB_START_TIMEOUT_S  # supervisor must report running/failed within this
LEFTOVER_KILL_S = 2.0        # how long leftovers are killed and looked for again


class LocalExecutor:
    """Jobs of one lab root as supervised local process groups (README "Process model")."""

    def __init__(self, root: Path, store: Store, grace: float,
                 cgroup_root: Path | None = None) -> None:
        self.root = root
        self.store = store
        self.grace = grace
        self.cgroup_root = cgroup_root   # benchd's delegated subtree: a cgroup per job

    async def start(self, marks: procs.JobMarks, argv: list[str],
                    limits: JobLimits | None = None) -> Started:
        """Spawn the job's supervisor in a new session (stdout+stderr appended to the job's
        log) and wait for its word: "running <pgid>" or "failed <why>". The supervisor pins
        itself to `limits.cpus` and limits the orchestrator's memory (benchd.supervisor)."""
        loop = asyncio.get_running_loop()
        paths = self.store.paths(marks.job_id)
        self.store.clear_requests(marks.job_id)
        log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o640)
        ready_r, ready_w = os.pipe()
        try:
            cmd = [sys.executable, "-m", "benchd.supervisor", "--root", str(self.root),
                   "--job-id", marks.job_id, "--grace", repr(self.grace),
                   "--ready-fd", str(ready_w), *_limit_args(limits),
                   *self._cgroup_args(marks.job_id, limits), "--", *argv]
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fd,
                                     stderr=log_fd, pass_fds=(ready_w,), cwd=self.root,
                                     start_new_session=True,
                                     env=dict(os.environ, **marks.env(),
                                              **{CHECKPOINT_ENV: str(paths.checkpoint)}))
        finally:
            os.close(log_fd)
            os.close(ready_w)
        handle = Handle(marks.job_id, popen.pid, procs.start_ticks(popen.pid), private=popen)
        try:
            reply = await asyncio.wait_for(_read_all(loop, ready_r), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            reply = b""
            log.error("job %s: supervisor pid %d said nothing in %.0f s; killing it",
                      marks.job_id, popen.pid, START_TIMEOUT_S)
            procs.kill_pids([popen.pid], signal.SIGKILL)
        finally:
            os.close(ready_r)
        word, _, rest = reply.decode("utf-8", "replace").strip().partition(" ")
        if word == "running":
            handle.pgid = int(rest) if rest.isdigit() else None
        return Started(handle, word == "running")

    async def wait(self, handle: Handle) -> None:
        """Until the supervisor has exited (a pidfd: no polling)."""
        assert handle.pid is not None
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(handle.pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            try:
                if procs.is_alive(handle.pid, handle.ticks):
                    fut = loop.create_future()
                    loop.add_reader(pidfd, lambda: fut.done() or fut.set_result(None))
                    try:
                        await fut
                    finally:
                        loop.remove_reader(pidfd)
            finally:
                os.close(pidfd)
        if handle.private is not None:  # the Popen of our own child (not after a restart)
            handle.private.wait()  # our child: reap it (it has exited, this does not block)
        if self.cgroup_root is not None:  # empty once the supervisor is gone, unless
            d = cgroups.job_dir(self.cgroup_root, handle.job_id)  # leftovers (then
            if not cgroups.populated(d):                           # kill_leftovers)
                cgroups.remove(d)

    def _cgroup_args(self, job_id: str, limits: JobLimits | None) -> list[str]:
        """Make the job's cgroup (under systemd delegation) and name it to the supervisor."""
        if self.cgroup_root is None:
            return []
        d, applied = cgroups.create_job(self.cgroup_root, job_id,
                                        limits.cpus if limits else None,
                                        limits.memory_max if limits else None)
        log.info("job %s: cgroup %s%s", job_id, d,
                 f" ({', '.join(applied)} set)" if applied else
                 " (cpuset/memory controllers not delegated: limits by affinity and rlimit)")
        return ["--cgroup", str(d)]

    def outcome(self, job_id: str) -> ExitRecord | None:
        return self.store.read_exit(job_id)

    def info(self, job_id: str) -> SupervisorInfo | None:
        return self.store.read_info(job_id)

    def stop(self, handle: Handle, order: CancelOrder) -> None:
        """The order on disk is what the supervisor acts on (and what survives our death);
        SIGUSR1 tells it to read it."""
        self.store.write_cancel(handle.job_id, order)
        if handle.pid is not None and procs.is_alive(handle.pid, handle.ticks):
            try:
                os.kill(handle.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    async def health_text(self) -> str:
        return "local"

    def request_checkpoint(self, handle: Handle) -> None:
        """The request file the orchestrator looks for at each experiment boundary (its path
        is in the job's environment, CHECKPOINT_ENV); no signal, so the request cannot
        disturb an experiment in progress."""
        self.store.request_checkpoint(handle.job_id)

    def holds_lock(self, job_id: str) -> bool:
        return procs.lock_is_held(self.store.paths(job_id).lock)

    def is_ours(self, marks: procs.JobMarks, pid: int | None, ticks: int | None) -> bool:
        return (pid is not None and procs.is_alive(pid, ticks)
                and procs.lock_is_held(self.store.paths(marks.job_id).lock)
                and marks.carried_by(pid))

    def kill_leftovers(self, marks: procs.JobMarks, pgid: int | None,
                       info: SupervisorInfo | None) -> list[str]:
        killed = []
        if self.cgroup_root is not None:  # everything the job started, escaped or not
            d = cgroups.job_dir(self.cgroup_root, marks.job_id)
            names = {pid: procs.command_name(pid) for pid in cgroups.pids(d)}
            killed = [f"{pid} ({names[pid]})" for pid in sorted(cgroups.kill(d))]
            cgroups.remove(d)
        return killed + _kill_leftovers(marks, pgid, info)

    def leftovers_note(self, killed: list[str]) -> str:
        if self.cgroup_root is not None:
            return _cgroup_leftovers_note(killed)
        return _leftovers_note(killed)


def _limit_args(limits: JobLimits | None) -> list[str]:
    """The supervisor's options for `limits`."""
    if limits is None:
        return []
    args = []
    if limits.cpus:
        args += ["--cpus", format_cpu_list(limits.cpus)]
    if limits.memory_max is not None:
        args += ["--memory-max", str(limits.memory_max)]
    return args


async def _read_all(loop: asyncio.AbstractEventLoop, fd: int) -> bytes:
    """Everything from a pipe until EOF, without blocking the loop."""
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    eof = loop.create_future()

    def on_readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
        elif not eof.done():
            eof.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await eof
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)


def _kill_leftovers(marks: procs.JobMarks, pgid: int | None,
                    info: SupervisorInfo | None = None) -> list[str]:
    """SIGKILL what is left of a job whose supervisor is gone and cannot do it: every process
    carrying the job's marks (escaped ones included: procs.job_pids), and its process group
    when the group leader is provably still this job's orchestrator (it carries the marks, or
    pid + start ticks from this job's own pid file). The group kill also covers a process
    caught in the middle of execve, whose environment cannot be read yet. Scans again after
    each kill until one finds nobody: a process that forked between a scan and its kill (a
    double fork in flight) has a child the next scan sees. Never the job id alone: a copied
    root's benchd must not reach the original's processes. Returns "pid (comm)" of each
    process killed; what cleared its environment AND left the group is not among them."""
    killed: dict[int, str] = {}
    deadline = time.monotonic() + LEFTOVER_KILL_S
    while True:
        victims = set(procs.job_pids(marks))
        if pgid is not None and (pgid in victims or _leader_proven(marks, pgid, info)):
            victims |= set(procs.group_members(pgid))
            procs.kill_group(pgid, signal.SIGKILL)
        if not victims:
            break
        for pid in victims - killed.keys():
            killed[pid] = procs.command_name(pid)
        procs.kill_pids(sorted(victims), signal.SIGKILL)
        if time.monotonic() > deadline:
            log.warning("job %s: processes still alive after SIGKILL: %s", marks.job_id,
                        sorted(victims))
            break
        time.sleep(0.002)   # let the kernel finish the kills before the next look
    return [f"{pid} ({name})" for pid, name in sorted(killed.items())]


def _leader_proven(marks: procs.JobMarks, pgid: int, info: SupervisorInfo | None) -> bool:
    """Is `pgid` still this job's orchestrator by its supervisor's pid file? The file must be
    this job instance's (same token; legacy: the leader's cwd is this root) and name `pgid`
    with start ticks that still match."""
    if info is None or info.orchestrator_pid != pgid or info.orchestrator_start_ticks is None:
        return False
    if marks.token is not None:
        if info.job_token != marks.token or info.root_id not in (None, marks.root_id):
            return False
    elif procs.cwd_identity(pgid) != marks.root_id:
        return False
    return procs.is_alive(pgid, info.orchestrator_start_ticks)


def _cgroup_leftovers_note(killed: list[str]) -> str:
    """With a cgroup per job, nothing of it can be left: say what was killed."""
    shown = ", ".join(killed[:5]) + (f", and {len(killed) - 5} more" if len(killed) > 5 else "")
    return (f"{len(killed)} leftover process(es) killed with its cgroup: {shown}" if killed
            else "nothing of it was left in its cgroup")


def _leftovers_note(killed: list[str]) -> str:
    """What a reason says about leftovers: exactly what was killed, and what cannot be known.
    Without the supervisor (whose subreaper role held every descendant) or a cgroup, a
    process that left the job's process group and cleared its environment is invisible."""
    shown = ", ".join(killed[:5]) + (f", and {len(killed) - 5} more" if len(killed) > 5 else "")
    found = (f"{len(killed)} leftover process(es) killed: {shown}" if killed
             else "no leftover process found")
    return (f"{found} (found by the job's environment marks or process group; a process that "
            f"left the group and cleared its environment cannot be found outside systemd and "
            f"may still be running)")
