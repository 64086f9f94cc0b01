"""The Slurm executor: each job is one `sbatch` batch job running the same orchestrator
command, and Slurm is the queue (README "Running jobs on a Slurm cluster").

This module is the only code that runs Slurm's commands: sbatch (submit, and the start-up
probe of the shared filesystem), squeue and `sacct -c` (the completion log) to watch,
scancel to stop, scontrol to hold/release/re-nice and to ping slurmctld. One watcher task
asks squeue about every job of ours at once every POLL_S seconds (backing off to
POLL_MAX_S while slurmctld does not answer) and `sacct -c` only about jobs that have left
the queue; the job layer (benchd.slurmjobs) turns what it reports into transitions.

sbatch_args is a pure function of the job's request, so that CPU and memory requests map
to Slurm's options in one visible place.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import pwd
import re
import secrets
import shlex
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from benchd import procs
from benchd.errors import ExecutorUnavailable
from benchd.executors import Handle, JobLimits, Started
from benchd.schema import CancelOrder, ExitRecord, SupervisorInfo
from benchd.states import FINAL, JobState, slurm_state, stopped_as
from benchd.store import Store
from pipeline.atomicio import write_bytes_atomic
from pipeline.checkpoint import CHECKPOINT_ENV, CHECKPOINT_REASON, EXIT_CHECKPOINTED

log = logging.getLogger(__name__)

POLL_S = 2.0                 # one squeue for all jobs this often while slurmctld answers
POLL_MAX_S = 30.0            # backoff ceiling while it does not
COMMAND_TIMEOUT_S = 30.0     # squeue/sbatch retry for ~9 s on a dead controller; never hang
PROBE_TIMEOUT_S = 60.0       # default bound for the shared-filesystem probe at start-up
NICE_PER_PRIORITY = 1000     # --nice = -priority * this: benchd priorities outweigh Slurm's
                             # per-submission FIFO decrement (priority/basic) and typical
                             # multifactor ages, so a higher benchd priority starts first
LOST_AFTER_POLLS = 3         # a job neither squeue nor the completion log knows, this many
                             # answers in a row, is lost (outcome unknown)
NAME_PREFIX = "benchd-"
_SQUEUE_FIELDS = "JobID:|,State:|,Reason:|,exit_code:|,StartTime:|,EndTime:|,Name:|,Comment:"
_TIME_RE = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?)$")


class SlurmError(Exception):
    """A Slurm command failed; `unreachable` when slurmctld did not answer."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class SlurmSettings:
    """benchd's --slurm-* options."""
    partition: str | None = None
    account: str | None = None
    time_limit: str | None = None          # Slurm's --time format: "30", "1:00:00", "1-0"
    extra: tuple[str, ...] = ()            # more sbatch options, as given (shlex-split)
    probe_timeout: float = PROBE_TIMEOUT_S


def check_time_limit(value: str) -> str:
    """A --time value Slurm accepts (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]), else
    ValueError naming it."""
    if not _TIME_RE.fullmatch(value.strip()):
        raise ValueError(f"expected Slurm's --time format (minutes, MM:SS, HH:MM:SS or "
                         f"D-HH:MM:SS), got {value!r}")
    return value.strip()


def nice_for(priority: int) -> int:
    """benchd priority -10..10 -> Slurm --nice (lower nice starts first)."""
    return -priority * NICE_PER_PRIORITY


def sbatch_args(job_id: str, root: Path, log_path: Path, *, cpus: int = 1,
                exclusive: bool = False, memory_max_bytes: int | None = None,
                priority: int = 0, settings: SlurmSettings = SlurmSettings(),
                hold: bool = False) -> list[str]:
    """sbatch's options for one job (the script comes on stdin). Pure: the job's CPU request,
    exclusivity, memory limit and priority, and benchd's --slurm-* settings, to Slurm's
    options. The name and comment tie the Slurm job to the benchd job and root both ways
    (a restart finds a job whose id it never recorded by them); --output appends to the
    job's own log, so tail -f and offsets work as with the local executor."""
    args = ["--parsable", f"--job-name={NAME_PREFIX}{job_id}",
            f"--comment={comment_for(job_id, root)}",
            f"--output={log_path}", f"--error={log_path}", "--open-mode=append",
            f"--chdir={root}", f"--nice={nice_for(priority)}",
            f"--cpus-per-task={max(1, int(cpus))}", "--ntasks=1", "--nodes=1",
            "--no-requeue", "--export=ALL"]
    if exclusive:
        args.append("--exclusive")
    if memory_max_bytes:
        args.append(f"--mem={max(1, math.ceil(memory_max_bytes / (1 << 20)))}M")
    if settings.partition:
        args.append(f"--partition={settings.partition}")
    if settings.account:
        args.append(f"--account={settings.account}")
    if settings.time_limit:
        args.append(f"--time={settings.time_limit}")
    if hold:
        args.append("--hold")
    return args + list(settings.extra)


def comment_for(job_id: str, root: Path) -> str:
    return f"benchd job {job_id} root {root}"


def batch_script(argv: list[str]) -> str:
    """The batch script: exec the orchestrator, so that the batch step IS the orchestrator
    and Slurm's signals and exit status are its own."""
    return "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in argv) + "\n"


@dataclass(frozen=True)
class SlurmStatus:
    """What Slurm says about one job, as it says it."""
    slurm_id: str
    state: str                   # e.g. PENDING, RUNNING, TIMEOUT, "CANCELLED by 0"
    reason: str | None = None    # squeue's reason (None for "None")
    exit_code: int | None = None  # the batch script's exit status / terminating signal
    signal: int | None = None
    start: str | None = None     # UTC ISO-8601 (utc_now's format) when it started
    end: str | None = None
    name: str | None = None
    comment: str | None = None

    @property
    def benchd_state(self) -> JobState | None:
        return slurm_state(self.state)

    @property
    def final(self) -> bool:
        return self.benchd_state in FINAL

    def text(self) -> str:
        """As shown in records: 'PENDING (Priority)', 'TIMEOUT (TimeLimit) ExitCode 0:15'."""
        out = self.state
        if self.reason:
            out += f" ({self.reason})"
        if self.final and self.exit_code is not None:
            out += f" ExitCode {self.exit_code}:{self.signal or 0}"
        return out


def _slurm_time(text: str) -> str | None:
    """Slurm's local ISO time (no zone) -> UTC ISO-8601 in utc_now's format."""
    if not text or text in ("Unknown", "N/A", "None"):
        return None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        return None
    return local.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def parse_squeue(out: str) -> list[SlurmStatus]:
    """Lines of `squeue -O` with _SQUEUE_FIELDS (exit_code is a raw wait status)."""
    found = []
    for line in out.splitlines():
        parts = line.split("|", 7)
        if len(parts) < 8 or not parts[0].strip():
            continue
        jid, state, reason, raw, start, end, name, comment = (p.strip() for p in parts)
        code = sig = None
        if raw.isdigit():
            status = int(raw)
            code, sig = status >> 8 & 0xFF, status & 0x7F
        found.append(SlurmStatus(jid, state, None if reason in ("None", "") else reason,
                                 code, sig, _slurm_time(start), _slurm_time(end), name,
                                 comment))
    return found


def parse_sacct(out: str) -> list[SlurmStatus]:
    """Lines of `sacct -c -n -P --format=JobID,State,ExitCode,Start,End,JobName`."""
    found = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) < 6 or not parts[0].strip():
            continue
        jid, state, exitcode, start, end, name = (p.strip() for p in parts[:6])
        code, _, sig = exitcode.partition(":")
        found.append(SlurmStatus(jid, state, None,
                                 int(code) if code.isdigit() else None,
                                 int(sig) if sig.isdigit() else None,
                                 _slurm_time(start), _slurm_time(end), name))
    return found


def signal_name(num: int | None) -> str | None:
    if not num:
        return None
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


@dataclass
class _Tracked:
    job_id: str
    last: SlurmStatus | None = None
    misses: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class SlurmExecutor:
    """Jobs of one lab root as Slurm batch jobs. Implements the Executor protocol where it
    applies (wait, outcome, stop) and the Slurm-only parts the job layer (benchd.slurmjobs)
    uses: submit, find, hold/release/renice, the watcher and slurmctld's state."""

    def __init__(self, root: Path, store: Store, grace: float,
                 settings: SlurmSettings = SlurmSettings()) -> None:
        self.root = root
        self.store = store
        self.grace = grace
        self.settings = settings
        self.on_status: Callable[[str, SlurmStatus], None] | None = None
        self.on_lost: Callable[[str, str], None] | None = None
        self.on_available: Callable[[], None] | None = None
        self._tracked: dict[str, _Tracked] = {}       # Slurm id -> ours
        self._outcomes: dict[str, tuple[ExitRecord, SlurmStatus]] = {}   # by benchd job id
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reachable: bool | None = None            # None: not asked yet
        self.last_answer: float | None = None         # monotonic time slurmctld last answered
        self.last_error: str | None = None
        self.last_checked: float | None = None        # monotonic time of the last ping
        self._probe_task: asyncio.Task[None] | None = None
        self._escalations: dict[str, asyncio.TimerHandle] = {}

    # running Slurm's commands --------------------------------------------------------------
    async def _run(self, argv: list[str], stdin: str | None = None,
                   env: dict[str, str] | None = None) -> str:
        """A Slurm command's stdout; SlurmError (unreachable when slurmctld did not answer)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, cwd=self.root)
        except FileNotFoundError:
            raise SlurmError(f"{argv[0]}: not installed (benchd --executor slurm needs "
                             f"Slurm's client commands on its PATH)", unreachable=True) from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise SlurmError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S:g} s",
                             unreachable=True) from None
        text = err.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            down = any(s in text for s in ("Unable to contact slurm controller",
                                           "Socket timed out", "Connection refused",
                                           "Zero Bytes were transmitted"))
            raise SlurmError(text or f"{argv[0]} exited {proc.returncode}", unreachable=down)
        return out.decode("utf-8", "replace")

    def _answered(self) -> None:
        was = self.reachable
        self.reachable, self.last_answer, self.last_error = True, time.monotonic(), None
        if was is False:
            log.info("slurmctld answers again")
            if self.on_available is not None:
                self.on_available()

    def _unanswered(self, why: str) -> None:
        if self.reachable is not False:
            log.warning("slurmctld does not answer: %s", why)
        self.reachable, self.last_error = False, why

    async def ping(self) -> bool:
        """Is slurmctld up? (`scontrol ping` answers at once either way.)"""
        self.last_checked = time.monotonic()
        try:
            out = await self._run(["scontrol", "ping"])
        except SlurmError as e:
            self._unanswered(str(e).splitlines()[0] if str(e) else "scontrol ping failed")
            return False
        if " is UP" in out:
            self._answered()
            return True
        self._unanswered(out.strip().splitlines()[0] if out.strip() else "slurmctld is down")
        return False

    async def require(self) -> None:
        """ExecutorUnavailable unless slurmctld answers now."""
        if not await self.ping():
            raise ExecutorUnavailable(f"slurmctld does not answer ({self.last_error}); no job "
                                      f"can be submitted until it does (jobs already "
                                      f"submitted keep their state)")

    async def health_text(self) -> str:
        """For /api/health: slurmctld asked again when the last word is older than POLL_S."""
        if self.last_checked is None or time.monotonic() - self.last_checked > POLL_S:
            await self.ping()
        return self.state_text()

    def state_text(self) -> str:
        """What is known of slurmctld now."""
        where = f"partition {self.settings.partition}" if self.settings.partition else \
            "default partition"
        if self.reachable is None:
            return f"slurm ({where}): not asked yet"
        ago = (f", last answer {time.monotonic() - self.last_answer:.0f} s ago"
               if self.last_answer is not None else "")
        if self.reachable:
            return f"slurm ({where}): slurmctld up{ago}; {len(self._tracked)} job(s) watched"
        return (f"slurm ({where}): slurmctld unreachable ({self.last_error}){ago}; "
                f"{len(self._tracked)} job(s) keep their state until it answers")

    # submitting ----------------------------------------------------------------------------
    async def submit(self, marks: procs.JobMarks, argv: list[str], *, cpus: int = 1,
                     exclusive: bool = False, memory_max_bytes: int | None = None,
                     priority: int = 0) -> str:
        """sbatch the job; its Slurm id. SlurmError if sbatch refused it."""
        paths = self.store.paths(marks.job_id)
        log_path = paths.log
        self.store.clear_requests(marks.job_id)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.close(fd)   # exists before the job runs: tail and offsets work while it waits
        args = sbatch_args(marks.job_id, self.root, log_path, cpus=cpus, exclusive=exclusive,
                           memory_max_bytes=memory_max_bytes, priority=priority,
                           settings=self.settings)
        out = await self._run(["sbatch", *args], stdin=batch_script(argv),
                              env=dict(os.environ, **marks.env(),  # --export=ALL: the job's
                                       **{CHECKPOINT_ENV: str(paths.checkpoint)}))
        self._answered()
        sid = out.strip().split(";", 1)[0]
        if not sid.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        return sid

    async def find(self, job_ids: Iterable[str]) -> dict[str, SlurmStatus]:
        """benchd job id -> its Slurm job, found by name and comment (this root's), in the
        queue or in the completion log: how a restart learns the id of a job submitted just
        before a crash, without submitting it twice. Waits first for any sbatch of ours
        still under way (its environment carries the job's marks)."""
        ids = list(job_ids)
        if not ids:
            return {}
        names = {f"{NAME_PREFIX}{j}": j for j in ids}
        out = await self._run(["squeue", "--noheader", "--states=all",
                               "--name=" + ",".join(names), "-O", _SQUEUE_FIELDS])
        self._answered()
        found: dict[str, SlurmStatus] = {}

        def keep(st: SlurmStatus) -> None:
            # the newest Slurm job of that name: a paused job resumed is a new batch job
            old = found.get(names[st.name])
            if old is None or _slurm_id_key(st.slurm_id) > _slurm_id_key(old.slurm_id):
                found[names[st.name]] = st
        for st in parse_squeue(out):
            if st.name in names and st.comment == comment_for(names[st.name], self.root):
                keep(st)
        rest = [n for n, j in names.items() if j not in found]
        if rest:
            for st in await self._sacct(["--name=" + ",".join(rest)]):
                if st.name in names:
                    keep(st)                     # the completion log has no comment
        return found

    async def wait_for_sbatch(self, marks: procs.JobMarks, timeout: float) -> None:
        """Until no sbatch carrying the job's marks runs (a crash left one under way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not [p for p in procs.job_pids(marks) if procs.command_name(p) == "sbatch"]:
                return
            await asyncio.sleep(0.1)

    # watching ------------------------------------------------------------------------------
    def track(self, slurm_id: str, job_id: str) -> None:
        self._tracked.setdefault(slurm_id, _Tracked(job_id))
        self._kick.set()

    def kick(self) -> None:
        """Poll now (a cancel or a new submission wants an answer soon)."""
        self._kick.set()

    def start_watching(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop_watching(self) -> None:
        for h in self._escalations.values():
            h.cancel()
        if self._probe_task is not None:
            self._probe_task.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _watch(self) -> None:
        delay = POLL_S
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            if not self._tracked:
                if self.reachable is False:   # a submission waits for it to answer
                    await self.ping()
                    delay = POLL_S if self.reachable else min(POLL_MAX_S, delay * 2)
                else:
                    delay = POLL_S
                continue
            try:
                await self.poll()
                delay = POLL_S
            except SlurmError as e:
                self._unanswered(str(e).splitlines()[0] if str(e) else "failed")
                delay = min(POLL_MAX_S, delay * 2)
            except Exception:
                log.exception("watching Slurm jobs failed")
                delay = min(POLL_MAX_S, delay * 2)

    async def poll(self) -> None:
        """One look at every tracked job: one squeue for all, `sacct -c` for those that left
        the queue. A dead slurmctld costs one fast `scontrol ping`, not squeue's retries."""
        if self.reachable is False and not await self.ping():
            raise SlurmError(self.last_error or "slurmctld is down", unreachable=True)
        ids = list(self._tracked)
        try:
            out = await self._run(["squeue", "--noheader", "--states=all",
                                   "--jobs=" + ",".join(ids), "-O", _SQUEUE_FIELDS])
        except SlurmError as e:
            if "Invalid job id" not in str(e):
                raise
            out = ""       # every id has left slurmctld's memory (MinJobAge): sacct below
        self._answered()
        seen = {st.slurm_id: st for st in parse_squeue(out) if st.slurm_id in self._tracked}
        gone = [i for i in ids if i not in seen]
        if gone:
            for st in await self._sacct(["--jobs=" + ",".join(gone)]):
                if st.slurm_id in gone and st.final:
                    seen[st.slurm_id] = st
        for sid in ids:
            t = self._tracked.get(sid)
            if t is None:
                continue
            st = seen.get(sid)
            if st is None:
                t.misses += 1
                if t.misses >= LOST_AFTER_POLLS:
                    self._drop(sid)
                    if self.on_lost is not None:
                        self.on_lost(t.job_id, f"Slurm has no record of job {sid} (not in "
                                     f"squeue nor in the completion log)")
                continue
            t.misses = 0
            self._apply(sid, t, st)

    async def _sacct(self, select: list[str]) -> list[SlurmStatus]:
        out = await self._run(["sacct", "-c", "-n", "-P", *select,
                               "--format=JobID,State,ExitCode,Start,End,JobName"])
        return parse_sacct(out)

    def _apply(self, sid: str, t: _Tracked, st: SlurmStatus) -> None:
        if st == t.last:
            return
        t.last = st
        if st.final:
            self._outcomes[t.job_id] = (self._exit_record(t.job_id, st), st)
            self._drop(sid)
            for w in t.waiters:
                if not w.done():
                    w.set_result(None)
        if self.on_status is not None:
            self.on_status(t.job_id, st)

    def status_of(self, sid: str) -> SlurmStatus | None:
        t = self._tracked.get(sid)
        return t.last if t else None

    def _drop(self, sid: str) -> None:
        self._tracked.pop(sid, None)
        h = self._escalations.pop(sid, None)
        if h is not None:
            h.cancel()

    def _exit_record(self, job_id: str, st: SlurmStatus) -> ExitRecord:
        order = self.store.read_cancel(job_id)
        cancelled = st.benchd_state == JobState.CANCELLED or order is not None
        checkpointed = not cancelled and st.exit_code == EXIT_CHECKPOINTED
        reason = None if st.benchd_state == JobState.COMPLETED and not cancelled \
            else f"Slurm: {st.text()}"
        if checkpointed:   # stopped at an experiment boundary on request (pause): kept
            reason = f"{CHECKPOINT_REASON} (exit {EXIT_CHECKPOINTED}); {reason}"
        elif cancelled and order is not None:
            reason = f"{stopped_as(order.purpose)} by {_user(order.requester_uid)}: {reason}"
        elif cancelled:
            reason = f"cancelled in Slurm (scancel outside benchd): {reason}"
        return ExitRecord(job_id=job_id, exit_code=st.exit_code, signal=signal_name(st.signal),
                          cancelled=cancelled, finished_at=st.end or _utc_now(), reason=reason,
                          checkpointed=checkpointed,
                          stopped_for=order.purpose if cancelled and order else None)

    def slurm_outcome(self, job_id: str) -> SlurmStatus | None:
        got = self._outcomes.get(job_id)
        return got[1] if got else None

    def forget(self, job_id: str) -> None:
        self._outcomes.pop(job_id, None)

    # the Executor protocol -----------------------------------------------------------------
    async def start(self, marks: procs.JobMarks, argv: list[str],
                    limits: JobLimits | None = None) -> Started:
        """Not used with Slurm (the job layer submits: benchd.slurmjobs)."""
        raise RuntimeError("the Slurm executor submits through SlurmJobManager")

    async def wait(self, handle: Handle) -> None:
        """Until the watcher has seen the Slurm job end."""
        if handle.job_id in self._outcomes:
            return
        sid = handle.private
        t = self._tracked.get(sid) if sid is not None else None
        if t is None:
            return
        fut = asyncio.get_running_loop().create_future()
        t.waiters.append(fut)
        await fut

    def outcome(self, job_id: str) -> ExitRecord | None:
        got = self._outcomes.get(job_id)
        return got[0] if got else None

    def info(self, job_id: str) -> SupervisorInfo | None:
        return None

    def stop(self, handle: Handle, order: CancelOrder) -> None:
        """`scancel --signal=TERM` now (to the batch step: the orchestrator), a full scancel
        after the grace. The order is on disk first: a restarted benchd finishes it."""
        self.store.write_cancel(handle.job_id, order)
        sid = handle.private
        if sid is None:
            return
        loop = asyncio.get_running_loop()
        loop.create_task(self._scancel(sid, "--batch", "--signal=TERM"))
        self._escalate(sid, order.grace)
        self.kick()

    def request_checkpoint(self, handle: Handle) -> None:
        """The request file the orchestrator looks for at each experiment boundary (its path
        is in the batch job's environment; the root is shared with the nodes)."""
        self.store.request_checkpoint(handle.job_id)

    def _escalate(self, sid: str, after: float) -> None:
        loop = asyncio.get_running_loop()
        old = self._escalations.pop(sid, None)
        if old is not None:
            old.cancel()
        self._escalations[sid] = loop.call_later(
            max(0.0, after), lambda: loop.create_task(self.scancel_now(sid)))

    def resume_cancel(self, sid: str, order: CancelOrder) -> None:
        """After a restart: the rest of an accepted cancel's grace, then the full scancel."""
        try:
            asked = datetime.fromisoformat(order.requested_at).timestamp()
        except ValueError:
            asked = time.time()
        self._escalate(sid, asked + order.grace - time.time())

    async def scancel_now(self, sid: str) -> None:
        """Every process of the job now (SIGKILL to all its steps), then the job itself."""
        await self._scancel(sid, "--full", "--signal=KILL")
        await self._scancel(sid)
        self.kick()

    async def _scancel(self, sid: str, *opts: str) -> None:
        try:
            await self._run(["scancel", *opts, sid])
        except SlurmError as e:
            log.warning("scancel %s %s: %s", " ".join(opts), sid, e)

    async def control(self, *args: str) -> None:
        """scontrol hold/release/update ...; SlurmError if it refused."""
        await self._run(["scontrol", *args])

    def holds_lock(self, job_id: str) -> bool:
        return False

    def is_ours(self, marks: procs.JobMarks, pid: int | None, ticks: int | None) -> bool:
        return False

    def kill_leftovers(self, marks: procs.JobMarks, pgid: int | None,
                       info: SupervisorInfo | None) -> list[str]:
        return []     # Slurm kills what its job leaves (proctrack)

    def leftovers_note(self, killed: list[str]) -> str:
        return "Slurm's process tracking kills what the job left"

    # the shared filesystem -----------------------------------------------------------------
    def _probe_marker(self) -> Path:
        return self.root / "run" / "slurm-probe.json"

    def _probe_key(self) -> str:
        """What a passed probe vouches for: this root (its identity: a moved or copied root
        is another) and where jobs run (partition, account, extra options)."""
        return json.dumps([procs.root_identity(self.root), self.settings.partition,
                           self.settings.account, list(self.settings.extra)])

    def probed_before(self) -> bool:
        """Did a probe with the same key pass before (run/slurm-probe.json)?"""
        try:
            return json.loads(self._probe_marker().read_text()).get("key") == self._probe_key()
        except (OSError, ValueError, AttributeError):
            return False

    def _probe_passed(self) -> None:
        self._probe_marker().parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._probe_marker(), json.dumps(
            {"key": self._probe_key(), "at": _utc_now()}).encode())

    async def check_shared_fs(self) -> str:
        """The start-up check. The first time (for this root and these settings) it blocks:
        SlurmError if the nodes do not write the probe files within probe_timeout. Once a
        probe has passed, later starts do not wait for a free node on a busy cluster: the
        probe runs in the background and a failure is logged as an error."""
        if not self.probed_before():
            line = await self.probe_shared_fs()
            self._probe_passed()
            return line
        self._probe_task = asyncio.get_running_loop().create_task(self._background_probe())
        return ("shared filesystem: a probe passed before for this root and these settings; "
                "checking again in the background")

    async def _background_probe(self) -> None:
        try:
            log.info("%s", await self.probe_shared_fs())
        except SlurmError as e:
            log.error("--executor slurm: %s", e)

    async def probe_shared_fs(self) -> str:
        """Run a tiny batch job where jobs run that writes a token into logs/ and results/
        under the root; return a line for the log once both are seen, else SlurmError with
        what was seen (timeout: settings.probe_timeout)."""
        token = secrets.token_hex(8)
        (self.root / "results").mkdir(exist_ok=True)
        self.store.logs_dir.mkdir(exist_ok=True)
        name = f".slurm-probe-{token}"
        files = [self.store.logs_dir / name, self.root / "results" / name]
        script = "#!/bin/sh\n" + "".join(f"printf %s {token} > {shlex.quote(str(f))}\n"
                                         for f in files)
        args = [a for a in sbatch_args("probe", self.root, Path("/dev/null"),
                                       settings=self.settings)
                if not a.startswith(("--comment=", "--output=", "--error=", "--nice="))]
        args += ["--output=/dev/null", f"--comment=benchd probe root {self.root}"]
        t0 = time.monotonic()
        sid = (await self._run(["sbatch", *args], stdin=script)).strip().split(";", 1)[0]
        self._answered()
        deadline = t0 + self.settings.probe_timeout
        last: SlurmStatus | None = None
        try:
            while time.monotonic() < deadline:
                if all(_reads(f) == token for f in files):
                    return (f"shared filesystem checked: Slurm job {sid} wrote to {files[0]} "
                            f"and {files[1]} in {time.monotonic() - t0:.1f} s")
                out = await self._run(["squeue", "--noheader", "--states=all",
                                       f"--jobs={sid}", "-O", _SQUEUE_FIELDS])
                got = parse_squeue(out)
                last = got[0] if got else last
                if last is not None and last.final:
                    await asyncio.sleep(0.5)   # its files may still be on their way (NFS)
                    if all(_reads(f) == token for f in files):
                        continue
                    missing = [str(f) for f in files if _reads(f) != token]
                    raise SlurmError(
                        f"the Slurm nodes cannot write to the benchd root {self.root}: probe "
                        f"job {sid} ended {last.text()} without writing {', '.join(missing)}. "
                        f"The root (results/ and logs/) must be on a filesystem shared with "
                        f"the nodes, at the same path")
                await asyncio.sleep(0.2)
            await self._scancel(sid)
            raise SlurmError(
                f"the Slurm nodes did not write to the benchd root {self.root} within "
                f"{self.settings.probe_timeout:g} s: probe job {sid} "
                f"{'is ' + last.text() if last else 'was not seen'}; the root (results/ and "
                f"logs/) must be on a filesystem shared with the nodes, at the same path "
                f"(or the partition has no free node now: --slurm-probe-timeout)")
        finally:
            for f in files:
                f.unlink(missing_ok=True)


def _reads(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _slurm_id_key(slurm_id: str) -> tuple[int, str]:
    """Slurm job ids grow: a later submission sorts after an earlier one."""
    head = slurm_id.split("_", 1)[0]
    return (int(head) if head.isdigit() else -1, slurm_id)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
