"""The per-job supervisor (`python -m benchd.supervisor`): one small process per job that owns
the orchestrator's life so that benchd may die, restart and reattach without the job noticing
(the conmon / containerd-shim pattern).

benchd spawns it in a new session. It:
  1. becomes a child subreaper, so every escaped descendant of the job reparents to it;
  2. holds an exclusive flock on logs/jobs/<id>.lock until it exits (liveness for benchd);
  3. starts the orchestrator in its own process group, stdout+stderr appended straight to
     logs/<id>.log (never a pipe to benchd), env PYTHONUNBUFFERED=1, BENCHD_JOB_ID=<id> and
     the job's other marks benchd gave the supervisor (BENCHD_JOB_TOKEN, BENCHD_ROOT_ID);
  4. writes logs/jobs/<id>.pid, then tells benchd "running <pid>" on --ready-fd;
  5. on SIGUSR1 reads logs/jobs/<id>.cancel: SIGTERM to the group, SIGKILL to the group and
     every descendant after the grace (SIGTERM/SIGINT to the supervisor itself: same, with
     the default grace) -- the escalation finishes whether or not benchd is still there;
  5b. a pause or preemption "now" is the same order with a purpose (CancelOrder.purpose),
     which the exit record keeps (stopped_for); a checkpoint at an experiment boundary needs
     no signal (pipeline.checkpoint: the orchestrator looks for the request file) and shows
     as exit code 75, `checkpointed` in the exit record;
  6. when the orchestrator has exited, kills and reaps whatever of the job is left (as
     subreaper, all of it is among its descendants), writes
     logs/jobs/<id>.exit atomically and exits.
With --cpus it first pins itself there (sched_setaffinity: every descendant inherits it) and
gives the job BENCHD_JOB_CPUS and OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS = that many CPUs; with
--memory-max the orchestrator (and so each of its descendants) gets RLIMIT_DATA = that many
bytes. The exit record carries the CPU time and peak RSS of all the job's processes (its
RUSAGE_CHILDREN, once every one is reaped) and whether it ran out of memory.
Import-light on purpose: stdlib + benchd.procs/layout until the orchestrator runs (the start
path pays for nothing else), then msgspec + benchd.schema/store for the side files.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchd import procs
from benchd.layout import JobPaths, utc_now
from benchd.states import stopped_as
from pipeline import threads
from pipeline.atomicio import write_bytes_atomic
from pipeline.checkpoint import CHECKPOINT_REASON, EXIT_CHECKPOINTED

if TYPE_CHECKING:
    from benchd.store import Store

_HANDLED = (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CLEANUP_TIMEOUT_S = 10.0
OOM_SCAN_BYTES = 64 * 1024  # how much of the end of the job's log is searched for OOM evidence
# what a process that was refused memory leaves in the log: Python's MemoryError, a C
# library's strerror(ENOMEM), C++'s std::bad_alloc, numpy's "Unable to allocate"
OOM_EVIDENCE = re.compile(rb"^(?:\w+\.)*MemoryError\b|Cannot allocate memory|std::bad_alloc|"
                          rb"Unable to allocate|\bout of memory\b", re.MULTILINE | re.IGNORECASE)
RESERVE_BYTES = 64 * 1024   # held on the logs filesystem so the exit record fits when it is full


def _note(log_fd: int, text: str) -> None:
    """A supervisor line in the job log, so a reader of the log sees what was done to it."""
    try:
        os.write(log_fd, f"[benchd-supervisor] {text}\n".encode())
    except OSError:
        pass


def _tell(ready_fd: int | None, text: str) -> None:
    """One line to benchd on the ready pipe, then close it (benchd may already be gone)."""
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, (text + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(ready_fd)


def _user_name(uid: int) -> str:
    """'alice' for a person reading the reason (the record keeps the uid itself)."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid {uid}"


def _how_stopped(job: "_Job", exit_code: int | None, sig: str | None) -> str:
    """What the cancel did, in words: 'stopped by SIGTERM after 0.4 s' or 'killed by SIGKILL
    after the 10 s grace' (the exit record keeps exit_code and signal as fields)."""
    if job.killed_after_grace:
        return f"killed by SIGKILL after the {job.grace_used:g} s grace"
    end = job.reaped_at if job.reaped_at is not None else time.monotonic()
    after = end - job.term_at if job.term_at is not None else None
    text = "stopped by SIGTERM" + (f" after {after:.1f} s" if after is not None else "")
    if sig and sig != "SIGTERM":
        text += f" ({sig})"
    elif exit_code is not None and exit_code != 128 + signal.SIGTERM:
        text += f" (exit code {exit_code})"
    return text


class _Job:
    def __init__(self, job_id: str, default_grace: float, log_fd: int) -> None:
        self.store: Store | None = None      # set once the orchestrator runs (lazy import)
        self.job_id = job_id
        self.default_grace = default_grace
        self.log_fd = log_fd
        self.pid = 0
        self.status: int | None = None       # orchestrator's wait status once reaped
        self.term_sent = False               # cancel took effect: SIGTERM went to the group
        self.kill_deadline: float | None = None
        self.killed_after_grace = False
        self.grace_used: float | None = None
        self.cancelled_by = ""               # who asked, for the exit record's reason
        self.purpose: str | None = None      # the order's StopFor (pause/preempt: keep the
                                             # job); a plain cancel (None) always wins
        self.term_at: float | None = None    # monotonic time SIGTERM went to the group
        self.reaped_at: float | None = None  # ... and the orchestrator was reaped

    def reap(self) -> None:
        """Reap every exited child (the orchestrator and reparented orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.status is None:
                self.status = status
                self.reaped_at = time.monotonic()

    def on_cancel(self, signum: int) -> None:
        if signum == signal.SIGUSR1:
            order = self.store.read_cancel(self.job_id) if self.store else None
            if order is None:
                _note(self.log_fd, "SIGUSR1 without a readable cancel order; ignored")
                return
            grace, who = order.grace, _user_name(order.requester_uid)
            purpose = order.purpose.value if order.purpose is not None else None
        else:
            grace, who = self.default_grace, f"{procs.signal_name(signum)} to the supervisor"
            purpose = None
        if not self.term_sent or purpose is None:
            self.purpose = purpose
        now = time.monotonic()
        if not self.term_sent:
            self.term_sent = True
            self.cancelled_by = who
            self.term_at = now
            self.grace_used = grace
            self.kill_deadline = now + grace
            _note(self.log_fd, f"{purpose or 'cancel'} requested by {who}: SIGTERM to process "
                               f"group {self.pid}, SIGKILL in {grace:g} s if still running")
            procs.kill_group(self.pid, signal.SIGTERM)
        elif self.kill_deadline is not None and now + grace < self.kill_deadline:
            self.kill_deadline = now + grace
            self.grace_used = grace
            _note(self.log_fd, f"cancel repeated by {who}: grace shortened to {grace:g} s")

    def kill_everything(self) -> int:
        """SIGKILL the group and every descendant until none is left. As child subreaper we
        inherit every orphan of the job (setsid'd, double-forked ones included), so the
        descendants of this process are all of the job that is left."""
        me = os.getpid()
        killed: set[int] = set()
        deadline = time.monotonic() + CLEANUP_TIMEOUT_S
        while True:
            procs.kill_group(self.pid, signal.SIGKILL)
            left = set(procs.descendants(me))
            if not left:
                break
            procs.kill_pids(sorted(left), signal.SIGKILL)
            killed |= left
            time.sleep(0.005)
            self.reap()
            if time.monotonic() > deadline:
                _note(self.log_fd, f"processes still alive after SIGKILL: {sorted(left)}")
                break
        self.reap()
        killed.discard(self.pid)
        return len(killed)


def _reserve(path: Path) -> bool:
    """Set RESERVE_BYTES aside (logs/jobs/<id>.reserve): if the job's output fills the logs
    filesystem, freeing it lets the exit record (and benchd's final record) still be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        finally:
            os.close(fd)
        return True
    except OSError:
        _unlink(path)
        return False


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _nearly_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < RESERVE_BYTES


def _ran_out_of_memory(log_path: Path, since: int) -> bool:
    """Did a process of this job (its output after offset `since` of the log) report that
    memory was refused? RLIMIT_DATA makes allocations fail (ENOMEM) rather than kill, so the
    evidence is what the process said about it; nothing is guessed from an exit code."""
    try:
        with open(log_path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(since, size - OOM_SCAN_BYTES))
            return OOM_EVIDENCE.search(f.read()) is not None
    except OSError:
        return False


def _cgroup_oom_kills(cgroup: Path) -> int:
    """How many of the job's processes the kernel's OOM killer ended at its cgroup's
    memory.max (memory.events oom_kill): the evidence under systemd."""
    from benchd import cgroups
    return cgroups.memory_events(cgroup).get("oom_kill", 0)


def _usage() -> tuple[float, float, int]:
    """(user s, system s, peak RSS bytes) of every child reaped so far: as subreaper that is
    the whole job (orchestrator, workers and orphans reparented to us)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(ru.ru_utime, 3), round(ru.ru_stime, 3), ru.ru_maxrss * 1024


def _limit_memory(limit: int) -> None:
    """preexec of the orchestrator: RLIMIT_DATA (heap, anonymous and private writable
    mappings: what allocations take), inherited by each descendant."""
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _write_info(paths: JobPaths, me: int, orchestrator_pid: int) -> None:
    """logs/jobs/<id>.pid (benchd.schema.SupervisorInfo, whose fields these are: a test
    decodes it with the Struct). Written with stdlib json so that the path to "running"
    does not wait for msgspec to import; atomic (temp + rename) but not fsynced, since it
    only means something while this process lives, and no process outlives a machine crash."""
    info = {"job_id": paths.job_id, "supervisor_pid": me,
            "supervisor_start_ticks": procs.start_ticks(me) or 0,
            "orchestrator_pid": orchestrator_pid, "pgid": orchestrator_pid,
            "started_at": utc_now(), "schema_version": 1,
            "orchestrator_start_ticks": procs.start_ticks(orchestrator_pid),
            "job_token": os.environ.get(procs.TOKEN_ENV),
            "root_id": os.environ.get(procs.ROOT_ENV),
            "cpus": sorted(os.sched_getaffinity(0))}
    write_bytes_atomic(paths.info, json.dumps(info).encode(), durable=False)


def run(root: Path, job_id: str, argv: list[str], default_grace: float,
        ready_fd: int | None, cpus: list[int] | None = None,
        memory_max: int | None = None, cgroup: Path | None = None) -> int:
    """Supervise one job; returns the supervisor's exit code (0 once an exit record is written)."""
    paths = JobPaths(root, job_id)
    paths.lock.parent.mkdir(parents=True, exist_ok=True)
    procs.set_child_subreaper()
    # 0600: only benchd's user may open it, so only its supervisor can hold it (anyone who can
    # open a file can flock it, and benchd reads a held lock as a live supervisor)
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # held until we exit; benchd only probes it

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in _HANDLED:  # the C handler writes the signal number to wake_w
        signal.signal(sig, lambda *_: None)

    log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    reserve = paths.reserve
    _reserve(reserve)
    job = _Job(job_id, default_grace, log_fd)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{procs.JOB_ENV: job_id})
    if cpus:
        env.update(threads.thread_env(len(cpus)), **{threads.JOB_CPUS_ENV: str(len(cpus))})
    log_start = os.fstat(log_fd).st_size
    try:
        if cgroup is not None:  # first: nothing the job starts may be outside it
            from benchd import cgroups
            try:
                cgroups.enter(cgroup)
            except OSError as e:
                raise OSError(e.errno, f"cannot enter its cgroup {cgroup}: {e.strerror}") \
                    from None
        if cpus:  # before the orchestrator exists: it and all it starts inherit the mask
            try:
                os.sched_setaffinity(0, cpus)
            except OSError as e:
                raise OSError(e.errno, f"cannot pin to CPUs {cpus}: {e.strerror}") from None
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                cwd=root, env=env, process_group=0, restore_signals=True,
                                preexec_fn=(None if memory_max is None
                                            else lambda: _limit_memory(memory_max)))
    except (OSError, subprocess.SubprocessError) as e:
        from benchd.schema import ExitRecord
        from benchd.store import Store
        reason = f"failed to start {argv[0]}: {getattr(e, 'strerror', None) or e}"
        _note(log_fd, reason)
        _unlink(reserve)
        Store(root).write_exit(ExitRecord(job_id=job_id, exit_code=None, signal=None,
                                          cancelled=False, finished_at=utc_now(), reason=reason))
        _tell(ready_fd, f"failed {reason}")
        return 0
    job.pid = proc.pid
    me = os.getpid()
    try:
        _write_info(paths, me, proc.pid)
    except OSError as e:  # e.g. a full disk: benchd records our pid itself; run the job anyway
        _note(log_fd, f"could not write {paths.info.name}: {e}")
    _tell(ready_fd, f"running {proc.pid}")
    # now, while the job runs, load what the other side files need
    from benchd.schema import ExitRecord
    from benchd.store import Store
    store = job.store = Store(root)

    while True:
        job.reap()
        if job.status is not None:
            break
        now = time.monotonic()
        if job.kill_deadline is not None and now >= job.kill_deadline \
                and not job.killed_after_grace:
            job.killed_after_grace = True
            _note(log_fd, f"still running {job.grace_used:g} s after SIGTERM: SIGKILL")
            procs.kill_group(job.pid, signal.SIGKILL)
            procs.kill_pids(procs.descendants(me), signal.SIGKILL)
            continue
        timeout = 1.0 if job.kill_deadline is None or job.killed_after_grace \
            else max(0.0, job.kill_deadline - now)
        try:
            select.select([wake_r], [], [], timeout)
            data = os.read(wake_r, 512)
        except BlockingIOError:
            data = b""
        for signum in dict.fromkeys(data):
            if signum in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
                job.on_cancel(signum)
    proc.returncode = job.status  # reaped by us; keep Popen from trying again

    leftovers = job.kill_everything()
    exit_code, sig, reason = procs.describe_wait_status(job.status)
    cancelled = job.term_sent and exit_code != 0
    checkpointed = exit_code == EXIT_CHECKPOINTED
    if cancelled:
        reason = (f"{stopped_as(job.purpose)} by {job.cancelled_by}: "
                  f"{_how_stopped(job, exit_code, sig)}")
    elif checkpointed:
        reason = f"{CHECKPOINT_REASON} (exit {EXIT_CHECKPOINTED})"
    if leftovers:
        _note(log_fd, f"killed {leftovers} leftover process(es) of the job")
    oom_killed = cgroup is not None and _cgroup_oom_kills(cgroup) > 0
    oom = (memory_max is not None and exit_code != 0 and not cancelled and not checkpointed
           and (oom_killed or _ran_out_of_memory(paths.log, log_start)))
    if oom:
        from benchd.sizes import format_size
        reason = f"out of memory (limit {format_size(memory_max)})"
    user_s, sys_s, rss = _usage()
    if cgroup is not None:  # the whole job's peak, where the memory controller is on
        from benchd import cgroups
        rss = cgroups.memory_peak(cgroup) or rss
    if exit_code != 0 and not cancelled and _nearly_full(paths.log):
        reason = (f"{reason}; the logs filesystem is full (no space left on device): the "
                  f"job's output could not all be written")
    _unlink(reserve)  # the job is gone: its space is ours now, for the records
    try:
        store.write_exit(ExitRecord(job_id=job_id, exit_code=exit_code, signal=sig,
                                    cancelled=cancelled, finished_at=utc_now(), reason=reason,
                                    leftover_killed=leftovers, checkpointed=checkpointed,
                                    stopped_for=job.purpose if cancelled else None,
                                    cpu_user_s=user_s, cpu_sys_s=sys_s, max_rss_bytes=rss,
                                    out_of_memory=oom))
    except OSError as e:
        _note(log_fd, f"cannot write the exit record: {e}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchd.supervisor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--job-id", required=True)
    p.add_argument("--grace", type=float, default=10.0,
                   help="SIGTERM->SIGKILL grace when the supervisor itself is told to stop")
    p.add_argument("--ready-fd", type=int, default=None)
    p.add_argument("--cpus", default=None,
                   help="pin the job to these CPUs (a cpulist such as 1-3,5)")
    p.add_argument("--memory-max", type=int, default=None,
                   help="RLIMIT_DATA in bytes of the orchestrator and its descendants")
    p.add_argument("--cgroup", type=Path, default=None,
                   help="the job's cgroup: the supervisor moves itself there first")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- orchestrator argv")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no orchestrator command after --")
    from benchd.cpusets import parse_cpu_list
    cpus = parse_cpu_list(a.cpus) if a.cpus else None
    return run(a.root.resolve(), a.job_id, command, a.grace, a.ready_fd, cpus, a.memory_max,
               a.cgroup)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # the exit record is durable and nothing else is pending: skip interpreter teardown, so
    # benchd (watching our pidfd) learns the outcome a few milliseconds sooner
    os._exit(code)
