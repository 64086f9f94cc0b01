"""The job layer's scheduler side: records, the queue, and what happens to a job when.

JobManager keeps every JobRecord in memory (they are small), persists each transition
atomically (benchd.store), keeps the queue (records in state queued/paused/preempted with
their priority and enqueue sequence) and asks benchd.scheduler which waiting job takes a free
slot (`slots`, default 1), runs each job under its own supervisor process
(benchd.supervisor) that outlives benchd if need be, and after a restart reconciles the
records on disk with what is really running (finalize / reattach / respawn once / mark
unknown). Processes are the executor's (benchd.executors: start, wait, stop, reattach; the
local one, benchd.executors.local, is the only code that spawns, signals or kills them).
The HTTP layer (benchd/api.py) calls one method per request; README's "Jobs" section
describes the states, the files on disk and the process model.
"""
from __future__ import annotations

import asyncio
import bisect
import errno
import logging
import math
import os
import pwd
import secrets
import shutil
import sys
import time
from datetime import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec

from benchd import audit, cpusets, logtail, procs, scheduler
from benchd.executors import Executor, Handle, JobLimits
from benchd.executors.local import LocalExecutor
from benchd.defaults import DEFAULT_GRACE_S, MIN_FREE_BYTES
from benchd.resume import resume_argv
from benchd.errors import (Busy, CancelFailed, Forbidden, InsufficientStorage,
                           InvalidRequest, JobFinal, JobNotFound, NotCancellable, NotPausable,
                           QueueFull)
from benchd.sizes import format_size, parse_size
from benchd.schema import (JOB_ID_RE, CancelOrder, ExitRecord, JobConfig, JobRecord, Progress,
                           SupervisorInfo, check_label)
from benchd.jobquery import JobQuery, Page, page
from benchd.states import (ACTIVE, ELIGIBLE, FINAL, STOPPING, WAITING, JobState, StopFor,
                           StopMode, can_transition)
from benchd.store import JobPaths, Store, utc_from_timestamp, utc_now
from pipeline import progress as pprogress
from pipeline.catalog import ConfigError, to_argv, validate_config

log = logging.getLogger(__name__)

CANCEL_MARGIN_S = 5.0        # after the grace, how long the SIGKILL escalation may take
GRACE_MAX_S = 3600.0
RECOVERED_REQUESTER = "unknown (record rebuilt)"  # its record was lost: nobody to name
PROGRESS_FLUSH_S = 0.5       # progress is persisted at most this often (memory is always current)
READ_CHUNK = 1 << 20
PROGRESS_FIELD_MAX = 4096    # characters; a longer progress string is ignored, so that a
                             # record stays far below benchd.store.STATE_MAX_BYTES
MIN_FREE_INODES = 16         # no job starts with fewer free inodes on logs/ (log, record, temps)
FOLLOW_RETRY_S = 1.0        # after an OSError while following a job (EMFILE, ...)
TAIL_SCANS = 2              # ?tail= offsets computed at once (worker threads); others wait
TAIL_QUICK_LINES = 1000     # a tail of at most this many lines is first looked for on the loop

MAX_SPAWN_ATTEMPTS = 2      # a job whose spawn was interrupted by a crash is spawned once more
DEFAULT_MAX_QUEUED_PER_USER = 50
RETRY_AFTER_DEFAULT_S = 60  # Retry-After of a 429 when no finished job says how long jobs take


class _Live:
    """Runtime state of the one active job (not persisted: the record is)."""

    def __init__(self, job_id: str, paths: JobPaths, marks: procs.JobMarks) -> None:
        self.job_id = job_id
        self.paths = paths
        self.marks = marks                   # what its processes carry (never the id alone)
        self.tailer = logtail.LogTailer(paths.log)
        self.started = asyncio.get_running_loop().create_future()  # running or final
        self.done = asyncio.get_running_loop().create_future()     # final record persisted
        self.handle = Handle(job_id)                               # the executor's
        self.task: asyncio.Task[None] | None = None
        self.launch: asyncio.Task[None] | None = None              # spawn until running
        self.limits: JobLimits | None = None                       # its CPUs and memory


class _ProgressReader:
    """Scans a job log from the start for progress lines, a bounded chunk at a time. Each
    step is blocking file I/O: JobManager._feed runs it in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.partial = b""

    def feed(self, final: bool = False) -> tuple[list[dict], bool]:
        """Parse what has been appended since the last call (at most READ_CHUNK); returns the
        progress objects found and whether more is waiting."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read(READ_CHUNK)
        except FileNotFoundError:
            return [], False
        self.pos += len(data)
        more = len(data) == READ_CHUNK
        buf = self.partial + data
        cut = len(buf) if final and not more else buf.rfind(b"\n") + 1
        self.partial = buf[cut:]
        if len(self.partial) > READ_CHUNK:  # a runaway line is not a progress line
            self.partial = b""
        return _progress_objects(buf[:cut]), more


def _progress_objects(lines: bytes) -> list[dict]:
    """The progress objects of the lines in `lines` that start with "@@". They are found by
    searching for them (C speed), not by splitting every line: a log is mostly other lines
    (a Python loop over the lines of one READ_CHUNK took tens of ms)."""
    text = b"\n" + lines  # every line, the first one too, now follows a newline
    out = []
    at = text.find(b"\n@@")
    while at >= 0:
        end = text.find(b"\n", at + 1)
        end = len(text) if end < 0 else end
        obj = pprogress.parse_line(text[at + 1:end])
        if obj is not None:
            out.append(obj)
        at = text.find(b"\n@@", end)
    return out


class JobManager:
    """Every job of one lab root: its records (in memory, persisted on each change), the
    queue, and each active job's supervisor, log and progress. Methods are called from the
    event loop."""

    def __init__(self, root: Path, *, grace: float = DEFAULT_GRACE_S,
                 orchestrator: list[str] | None = None, admin_gid: int | None = None,
                 on_change: Callable[[JobRecord], None] | None = None,
                 on_transition: Callable[[JobRecord], None] | None = None,
                 make_space: Callable[[], Awaitable[str]] | None = None,
                 slots: int = 1,
                 max_queued_per_user: int = DEFAULT_MAX_QUEUED_PER_USER,
                 executor: Executor | None = None,
                 cpus: list[int] | None = None, cores: list[cpusets.Core] | None = None,
                 job_memory_max: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.grace = grace
        self.orchestrator = list(orchestrator) if orchestrator else [sys.executable, "-m",
                                                                      "pipeline"]
        self.admin_gid = admin_gid
        self.on_change = on_change
        self.store = Store(self.root)                  # creates the root if need be
        self.executor: Executor = executor or LocalExecutor(self.root, self.store, grace)
        self.root_id = procs.root_identity(self.root)  # a copy of logs/ cannot carry this
        self.on_transition = on_transition  # before a new state is written (notifications)
        self.make_space = make_space   # retention: prune what the policy allows; says what not
        self._jobs: dict[str, JobRecord] = {}
        self._order: list[str] = []              # oldest first
        self._index: dict[str, int] = {}         # job id -> position in _order (paging)
        self.slots = slots
        self.max_queued_per_user = max_queued_per_user
        self._live: dict[str, _Live] = {}        # job id -> runtime of each active job
        self._waiting: set[str] = set()          # ids of jobs in WAITING states
        self._seq = 0                            # last enqueue sequence handed out
        self._vclock = 0                         # key of the last job started (fairness)
        self._positions: dict[str, int] | None = None  # cache of queue_positions()
        self._qlist: list[tuple[tuple[int, int, int], str]] | None = None  # sorted queue
        self._settling = False                   # reconcile/close: no dispatch meanwhile
        self._typical: dict[tuple, float | None] = {}  # estimated_start_s cache (per config)
        self._start_lock = asyncio.Lock()
        self._changed: dict[str, asyncio.Event] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._dirty: set[str] = set()
        self._unsaved: set[str] = set()          # records the disk refused (full)
        self._scans = logtail.FileScans(TAIL_SCANS)
        # CPUs and memory (benchd.cpusets): the cores benchd hands out, whole, to jobs
        self.cores = cores if cores is not None else cpusets.read_cores(
            cpus if cpus is not None else cpusets.default_cpus(cpusets.online_cpus()))
        self.job_memory_max = job_memory_max

    # queries ---------------------------------------------------------------------------
    def list_jobs(self, limit: int | None = None,
                  statuses: frozenset[JobState] | None = None) -> list[JobRecord]:
        """Newest first, optionally only some statuses, at most `limit`."""
        return self.page_jobs(JobQuery(limit=limit, statuses=statuses)).jobs

    def page_jobs(self, q: JobQuery) -> Page:
        """One page of the history, newest first (benchd.jobquery); InvalidRequest when the
        `before` cursor names no job."""
        if q.before is not None and q.before not in self._index:
            raise InvalidRequest(f"before: no job {q.before!r} (pass the `next` of a previous "
                                 f"page, a job id)")
        return page(self._order, self._index, self._jobs, q)

    def get(self, job_id: str) -> JobRecord:
        valid = isinstance(job_id, str) and JOB_ID_RE.fullmatch(job_id)
        rec = self._jobs.get(job_id) if valid else None  # never a path: ids are checked first
        if rec is None:
            raise JobNotFound(f"no job {job_id!r}")
        return rec

    def active(self) -> JobRecord | None:
        """The oldest active job (starting or running), if any."""
        return self._jobs[next(iter(self._live))] if self._live else None

    def active_jobs(self) -> list[JobRecord]:
        return [self._jobs[j] for j in self._live]

    def queue_positions(self) -> dict[str, int]:
        """job id -> 1-based place in the queue (benchd.scheduler.queue_order), for every
        waiting job; held and blocked ones keep their place but are skipped when starting."""
        if self._positions is None:
            if self._qlist is None:  # same order as scheduler.queue_order, kept sorted
                self._qlist = sorted((_order_key(self._jobs[j]), j) for j in self._waiting)
            self._positions = {j: i for i, (_, j) in enumerate(self._qlist, 1)}
        return self._positions

    def shown(self, rec: JobRecord) -> JobRecord:
        """The record as the API shows it: with its queue position while it waits."""
        if rec.status not in WAITING:
            return rec
        return msgspec.structs.replace(rec, queue_position=self.queue_positions().get(rec.job_id),
                                       estimated_start_s=self.estimated_start_s(rec.job_id))

    def estimated_start_s(self, job_id: str) -> float | None:
        """Seconds until a waiting job may start, from the durations of earlier completed
        jobs with the same experiments and n (any completed job when none is comparable):
        the jobs ahead of it, spread over the slots. None when nothing has completed yet."""
        rec = self._jobs[job_id]
        pos = self.queue_positions().get(job_id)
        if pos is None:
            return None
        key = (tuple(rec.config.experiments or ()), rec.config.n, rec.config.ci)
        if key not in self._typical:
            self._typical[key] = self._typical_duration(rec.config)
        per_job = self._typical[key]
        if per_job is None:
            return None
        ahead = pos - 1 + len(self._live)
        return round(per_job * ahead / max(1, self.slots), 1)

    # start -------------------------------------------------------------------------------
    async def start(self, config: JobConfig, uid: int, user: str, *,
                    before_start: Callable[[JobRecord], None] | None = None) -> JobRecord:
        """Validate, then run the orchestrator under a new supervisor when the scheduler gives
        it a free slot now, else queue it (`config.queue` false: refuse with Busy instead).
        Returns the record once the orchestrator runs (or the FAILED record if it could not
        be started), or the QUEUED record with its position.
        `before_start(record)` runs once the job has its id, before anything is written; if it
        raises, nothing is started or kept."""
        check_label(config.label)
        self._argv_tail(config)  # refused now, not when its turn comes
        self._check_resources(config)
        priority = await self._check_priority(config.priority, uid, None)
        self._check_dependencies(config)
        note = await self.make_space() if self.make_space is not None else ""
        self._check_space(note)
        async with self._start_lock:
            job_id = secrets.token_hex(6)
            while job_id in self._jobs:
                job_id = secrets.token_hex(6)
            rec = JobRecord(job_id=job_id, status=JobState.QUEUED, config=config,
                            requester_uid=uid, requester_name=user, created_at=utc_now(),
                            job_token=secrets.token_hex(16), root_id=self.root_id,
                            priority=priority, queue_seq=self._seq + 1,
                            queue_key=scheduler.next_key(
                                self._vclock, (self._jobs[j].queue_key or 0
                                               for j in self._waiting
                                               if self._jobs[j].requester_uid == uid)))
            placed = self._place_now(rec)
            now = placed is not None
            if not now:
                if not config.queue:
                    self._refuse_busy()
                self._check_quota(uid, user)
            if before_start is not None:
                before_start(rec)
            if now:  # the spawn intent is the first record: a restart finds it (reconcile)
                rec = msgspec.structs.replace(rec, status=JobState.STARTING, spawn_attempts=1,
                                              **self._resources(rec, placed))
                self._vclock = max(self._vclock, rec.queue_key or 0)
            self._save_first(rec)  # before anything exists: a refusal leaves no phantom job
            self._seq += 1
            self._jobs[job_id] = rec
            self._index[job_id] = len(self._order)
            self._order.append(job_id)
            if not now:
                self._waiting.add(job_id)
                if self._qlist is not None:  # a submit is one insertion, not a new sort
                    bisect.insort(self._qlist, (_order_key(rec), job_id))
                self._positions = None
                self._announce(rec)
                why = self._dependency_failure(rec)  # no slot for it now: nothing else to do
                if why is not None:
                    self._update(rec, status=JobState.FAILED, reason=why, finished_at=utc_now())
                else:
                    self._preempt()  # it may outrank a running job
                return self.shown(self._jobs[job_id])
            live = self._begin(rec, self._argv_tail(config))
            # shielded: a caller that goes away mid-start must not leave a half-started job
            await asyncio.shield(live.launch)
            return self._jobs[job_id]

    def _argv_tail(self, config: JobConfig) -> list[str]:
        """The orchestrator's arguments for `config`, or the error that refuses it."""
        if config.resume is not None:
            return resume_argv(config, self.root / "results")
        try:
            return to_argv(validate_config(config.experiments, config.n, config.seed,
                                           config.perf_rounds, config.no_perf, config.ci))
        except ConfigError as e:
            raise InvalidRequest(str(e)) from None

    def _begin(self, rec: JobRecord, tail: list[str]) -> _Live:
        """Spawn the supervisor of a job whose record already says STARTING (on disk)."""
        live = _Live(rec.job_id, self.store.paths(rec.job_id),
                     procs.JobMarks(rec.job_id, rec.job_token, self.root_id))
        self._live[rec.job_id] = live
        live.limits = self._limits(rec)
        argv = [*self.orchestrator, *tail, "--results-dir", str(self.root / "results")]
        live.launch = asyncio.get_running_loop().create_task(self._launch(live, rec, argv))
        return live

    async def _check_priority(self, priority: object, uid: int, rec: JobRecord | None) -> int:
        if isinstance(priority, bool) or not isinstance(priority, int) \
                or not scheduler.PRIORITY_MIN <= priority <= scheduler.PRIORITY_MAX:
            raise InvalidRequest(f"priority: must be an integer from {scheduler.PRIORITY_MIN} "
                                 f"to {scheduler.PRIORITY_MAX}, got {priority!r}")
        if priority > 0 and (rec is None or priority > rec.priority) \
                and not await asyncio.to_thread(self.is_admin, uid):
            raise Forbidden(f"priority: only root or the admin group may raise a priority "
                            f"above 0 (asked for {priority})")
        return priority

    def _check_dependencies(self, config: JobConfig) -> None:
        for field in ("after", "after_any"):
            ids = getattr(config, field) or []
            for dep in ids:
                if not isinstance(dep, str) or not JOB_ID_RE.fullmatch(dep):
                    raise InvalidRequest(f"{field}: not a job id: {dep!r} (12 hex digits)")
                if dep not in self._jobs:
                    raise InvalidRequest(f"{field}: no job {dep!r}")

    def _check_quota(self, uid: int, user: str) -> None:
        mine = sum(1 for j in self._waiting if self._jobs[j].requester_uid == uid)
        if mine >= self.max_queued_per_user:
            retry = self._typical_duration(None)
            raise QueueFull(f"{user} (uid {uid}) already has {mine} jobs waiting, the most "
                            f"benchd allows (--max-queued-per-user {self.max_queued_per_user}); "
                            f"retry once some have started",
                            max(1, math.ceil(retry)) if retry else RETRY_AFTER_DEFAULT_S)

    def _typical_duration(self, config: JobConfig | None) -> float | None:
        """Median run time (s) of the last 20 completed jobs like `config` (same experiments
        and n; any job when none is alike or `config` is None)."""
        alike: list[float] = []
        other: list[float] = []
        for job_id in reversed(self._order):
            r = self._jobs[job_id]
            if r.status != JobState.COMPLETED or not r.started_at or not r.finished_at:
                continue
            try:
                d = (datetime.fromisoformat(r.finished_at)
                     - datetime.fromisoformat(r.started_at)).total_seconds()
            except ValueError:
                continue
            same = config is not None and (r.config.experiments, r.config.n, r.config.ci) == \
                (config.experiments, config.n, config.ci)
            (alike if same else other).append(d)
            if len(alike) >= 20 or (config is None and len(other) >= 20):
                break
        pool = alike or other[:20]
        return sorted(pool)[len(pool) // 2] if pool else None

    def _refuse_busy(self) -> None:
        if self._live:
            rec = self._jobs[next(iter(self._live))]
            raise Busy(f"job {rec.job_id} is {rec.status.value} (started by "
                        f"{rec.requester_name}); no free slot ({self.slots}) and the request "
                        f"said not to queue", rec.job_id)
        first = scheduler.pick(self._snapshot(), 1)
        if first:
            raise Busy(f"no free slot now: job {first[0].job_id} is queued ahead and the "
                       f"request said not to queue", first[0].job_id)
        raise InvalidRequest("queue: false cannot be combined with dependencies that have "
                             "not completed yet (after/after_any): the job could not start now")

    # the queue ---------------------------------------------------------------------------
    def _snapshot(self, extra: JobRecord | None = None) -> list[scheduler.Waiting]:
        recs = [self._jobs[j] for j in self._waiting] + ([extra] if extra else [])
        return [scheduler.Waiting(r.job_id, r.requester_uid, r.priority, r.queue_seq or 0,
                                  r.status in ELIGIBLE and self._deps_met(r),
                                  r.queue_key or r.queue_seq or 0,
                                  r.config.cpus, r.config.exclusive)
                for r in recs]

    def _starts_now(self, rec: JobRecord) -> bool:
        """Would the scheduler give `rec` (not yet in the queue) a slot right now?"""
        return self._place_now(rec) is not None

    # CPUs and memory (benchd.cpusets; README "CPUs and memory") -------------------------
    def _place_now(self, rec: JobRecord) -> tuple[int, ...] | None:
        """The CPUs `rec` (not yet in the queue) would start on right now, if it would."""
        free = self.slots - len(self._live)
        if free <= 0:
            return None
        for w, cpus in scheduler.place(self._snapshot(rec), free, self.cores,
                                       self._busy_cpus()):
            if w.job_id == rec.job_id:
                return cpus
        return None

    def _busy_cpus(self) -> set[int]:
        """The CPUs of every job holding a slot (its record says which: persisted, so a
        restarted benchd knows them for the jobs it reattaches)."""
        return {c for j in self._live for c in (self._jobs[j].cpuset or ())}

    def _resources(self, rec: JobRecord, cpus: tuple[int, ...]) -> dict[str, Any]:
        """The record fields of a job given `cpus`: written with its spawn intent."""
        limit = rec.config.memory_max
        return dict(cpuset=list(cpus),
                    memory_limit=(parse_size(limit) if limit is not None
                                  else self.job_memory_max))

    def _check_resources(self, config: JobConfig) -> None:
        """cpus, exclusive and memory_max of a request, or InvalidRequest naming the field."""
        have, where = self._cpu_capacity()
        if isinstance(config.cpus, bool) or not 1 <= config.cpus <= have:
            raise InvalidRequest(f"cpus: must be an integer from 1 to {have} ({where}), "
                                 f"got {config.cpus!r}")
        if config.memory_max is not None:
            try:
                limit = parse_size(config.memory_max)
            except ValueError as e:
                raise InvalidRequest(f"memory_max: {e}") from None
            if self.job_memory_max is not None and limit > self.job_memory_max:
                raise InvalidRequest(
                    f"memory_max: {format_size(limit)} is above the most benchd allows "
                    f"(--job-memory-max {format_size(self.job_memory_max)})")

    def _cpu_capacity(self) -> tuple[int, str]:
        """The most CPUs one job may ask for, and where that number comes from."""
        managed = cpusets.format_cpu_list(c for core in self.cores for c in core)
        return cpusets.capacity(self.cores), f"the CPUs benchd manages: {managed}"

    def _limits(self, rec: JobRecord) -> JobLimits:
        return JobLimits(tuple(rec.cpuset) if rec.cpuset else None, rec.memory_limit)

    def _deps_met(self, rec: JobRecord) -> bool:
        for dep in rec.config.after or ():
            d = self._jobs.get(dep)
            if d is None or d.status != JobState.COMPLETED:
                return False
        for dep in rec.config.after_any or ():
            d = self._jobs.get(dep)
            if d is not None and d.status not in FINAL:
                return False
        return True

    def _dependency_failure(self, rec: JobRecord) -> str | None:
        """Why `rec` can never start (an `after` job ended other than completed), if so."""
        for dep in rec.config.after or ():
            d = self._jobs.get(dep)
            if d is None:
                return f"dependency failed: job {dep} no longer exists"
            if d.status in FINAL and d.status != JobState.COMPLETED:
                return f"dependency failed: job {dep} ended {d.status.value}"
        return None

    def _dispatch(self) -> None:
        """Apply the policy: end jobs whose dependencies failed, then start the jobs the
        scheduler picks for the free slots. Called after every change that may matter."""
        if self._settling:
            return
        changed = True
        while changed:  # a failed dependent may itself be another job's dependency
            changed = False
            for job_id in sorted(j for j in self._waiting if self._jobs[j].config.after):
                rec = self._jobs[job_id]
                why = self._dependency_failure(rec)
                if why is not None:
                    self._update(rec, status=JobState.FAILED, reason=why, finished_at=utc_now())
                    changed = True
        while self.slots > len(self._live):
            picked = scheduler.place(self._snapshot(), self.slots - len(self._live),
                                     self.cores, self._busy_cpus())
            if not picked:
                break
            for w, cpus in picked:
                rec = self._jobs[w.job_id]
                tail = self._queued_argv(rec)
                if tail is None:
                    continue
                rec = self._update(rec, status=JobState.STARTING, reason=None,
                                   spawn_attempts=rec.spawn_attempts + 1,  # intent first
                                   **self._resources(rec, cpus))
                self._vclock = max(self._vclock, rec.queue_key or 0)
                self._begin(rec, tail)
        self._preempt()

    def _preempt(self) -> None:
        """Preempt the running job the policy names (scheduler.victim), if any: its new state
        (preempting, how, for whom) is written before it is asked, so that a benchd killed in
        between finds the intent and asks again (reconcile); the waiting job starts only once
        the preempted one's slot is free, never twice. Only running jobs (not starting) can be
        preempted; a job that becomes running calls this again."""
        if self._settling:
            return
        recs = [self._jobs[j] for j in self._live]
        running = [scheduler.Running(r.job_id, r.priority, r.queue_seq or 0,
                                     tuple(r.cpuset or ()))
                   for r in recs
                   if r.status == JobState.RUNNING and self._live[r.job_id].started.done()]
        if self.slots > len(self._live):
            self._preempt_for_cpus(recs, running)
            return
        freeing = sum(1 for r in recs if r.status in STOPPING)
        snapshot = self._snapshot()
        low = scheduler.victim(running, snapshot, self.slots - len(self._live), freeing)
        if low is None:
            return
        named = {r.preempted_by for r in recs if r.status == JobState.PREEMPTING}
        for_whom = next(w for w in scheduler.pick(snapshot, freeing + 1)
                        if w.job_id not in named)  # the one no preemption is for yet
        self._preempt_one(low.job_id, for_whom.job_id)

    def _preempt_for_cpus(self, recs: list[JobRecord], running: list[scheduler.Running]
                          ) -> None:
        """A slot is free but the first waiting job does not fit on the free CPUs: preempt a
        lower-priority running job for it, if that can make room (scheduler.cpu_victim)."""
        preemptible = {r.job_id for r in running}
        stopping = [r for r in recs if r.status in STOPPING]
        held = [c for r in recs if r.job_id not in preemptible and r.status not in STOPPING
                for c in (r.cpuset or ())]
        got = scheduler.cpu_victim(self._snapshot(), running, held, self.cores,
                                   [r.preempted_by for r in stopping if r.preempted_by])
        if got is not None:
            low, head = got
            self._preempt_one(low.job_id, head.job_id)

    def _preempt_one(self, job_id: str, for_id: str) -> None:
        """Preempt `job_id` to make room for `for_id`, as `for_id` asked ("preempt")."""
        mode = self._jobs[for_id].config.preempt or StopMode.BOUNDARY
        self._ask_to_stop(self._jobs[job_id], JobState.PREEMPTING, StopMode(mode), 0,
                          preempted_by=for_id)

    def _ask_to_stop(self, rec: JobRecord, state: JobState, mode: StopMode, uid: int,
                     preempted_by: str | None = None) -> JobRecord:
        """Pause or preempt a running job, keeping its staged run: the intent is persisted,
        then the executor asks the job (a checkpoint request, or SIGTERM for `now`)."""
        live = self._live[rec.job_id]
        new = self._update(rec, status=state, stop_mode=mode,
                           preempted_by=preempted_by if state == JobState.PREEMPTING else None)
        self._signal_stop(live, new, uid)
        return new

    def _signal_stop(self, live: _Live, rec: JobRecord, uid: int) -> None:
        """Ask a pausing/preempting job's processes (again: idempotent) to stop as recorded."""
        if rec.stop_mode == StopMode.NOW:
            purpose = StopFor.PREEMPT if rec.status == JobState.PREEMPTING else StopFor.PAUSE
            self.executor.stop(live.handle, CancelOrder(requester_uid=uid, grace=self.grace,
                                                        requested_at=utc_now(), purpose=purpose))
        else:
            self.executor.request_checkpoint(live.handle)

    def _queued_argv(self, rec: JobRecord) -> list[str] | None:
        """The argv tail of a job checked when it was submitted (a resumed run that is gone
        or busy by now is the orchestrator's to refuse: exit 2, with the reason in the log);
        None, with the job failed, if its config no longer validates (a changed catalog).
        A job that was paused or preempted resumes its own staged run (same id and seed)."""
        if rec.resume_run is not None:
            return ["--resume", rec.resume_run]
        if rec.config.resume is not None:
            return ["--resume", rec.config.resume]
        c = rec.config
        try:
            return to_argv(validate_config(c.experiments, c.n, c.seed, c.perf_rounds,
                                           c.no_perf, c.ci))
        except ConfigError as e:
            self._update(rec, status=JobState.FAILED, finished_at=utc_now(),
                         reason=f"could not start: {e}")
            return None

    async def set_priority(self, job_id: str, uid: int, priority: object) -> JobRecord:
        """PATCH {"priority": N}: owner, root or the admin group; above 0 (or raising a job
        already above 0) needs root or the admin group."""
        rec = self.get(job_id)
        await self._check_owner(rec, uid, "re-prioritise")
        if rec.status in FINAL:
            raise JobFinal(f"job {job_id} is already {rec.status.value}: its priority no "
                           f"longer matters")
        p = await self._check_priority(priority, uid, rec)
        rec = self._jobs[job_id]
        if p != rec.priority:
            self._update(rec, priority=p)
            self._dispatch()
        return self.shown(self._jobs[job_id])

    async def pause(self, job_id: str, uid: int, now: bool = False) -> JobRecord:
        """Hold a waiting job (Slurm's `scontrol hold`): it keeps its place in the queue but
        is not started until resumed. A running job is asked to stop at its next experiment
        boundary (`now`: SIGTERM at once, the interrupted experiment is redone) and is
        `pausing` until it has, then `paused` with its staged run kept (resume re-queues it,
        and it resumes that run). Owner, root or the admin group."""
        rec = self.get(job_id)
        await self._check_owner(rec, uid, "pause")
        rec = self._jobs[job_id]
        if rec.status == JobState.PAUSED:
            return self.shown(rec)
        if rec.status in (JobState.QUEUED, JobState.PREEMPTED):
            new = self._update(rec, status=JobState.PAUSED)
            self._dispatch()  # the slot it might have taken goes to the next one
            return self.shown(new)
        if rec.status in FINAL:
            raise NotPausable(f"job {job_id} is already {rec.status.value}")
        live = self._live.get(job_id)
        if live is None:
            raise NotPausable(f"job {job_id} is {rec.status.value}, not running here")
        await asyncio.shield(live.started)  # a starting job is paused once it runs
        rec = self._jobs[job_id]
        # a SIGTERM already sent (preempt "now") stays what it is
        mode = StopMode.NOW if now or rec.stop_mode == StopMode.NOW else StopMode.BOUNDARY
        if rec.status in FINAL or live.done.done():
            raise NotPausable(f"job {job_id} is already {rec.status.value}")
        if rec.status in (JobState.RUNNING, JobState.PREEMPTING):
            rec = self._ask_to_stop(rec, JobState.PAUSING, mode, uid)
        elif rec.status == JobState.PAUSING and now and rec.stop_mode != StopMode.NOW:
            rec = self._update(rec, stop_mode=StopMode.NOW)  # escalate: SIGTERM now
            self._signal_stop(live, rec, uid)
        return self.shown(rec)

    async def resume(self, job_id: str, uid: int) -> JobRecord:
        """Put a held (paused) job back in the queue, in its old place."""
        rec = self.get(job_id)
        await self._check_owner(rec, uid, "resume")
        rec = self._jobs[job_id]
        if rec.status != JobState.PAUSED:
            raise NotPausable(f"job {job_id} is {rec.status.value}, not paused: nothing to "
                              f"resume")
        self._update(rec, status=JobState.QUEUED)
        self._dispatch()
        return self.shown(self._jobs[job_id])

    async def _check_owner(self, rec: JobRecord, uid: int, what: str) -> None:
        if uid != rec.requester_uid and not await asyncio.to_thread(self.is_admin, uid):
            raise Forbidden(f"job {rec.job_id} belongs to {rec.requester_name} "
                            f"(uid {rec.requester_uid}); only they, root or the admin group "
                            f"may {what} it")

    async def _launch(self, live: _Live, rec: JobRecord, argv: list[str]) -> None:
        try:
            self._announce(rec)
            await self._spawn(live, argv)
        except Exception as e:
            log.exception("job %s failed to start", live.job_id)
            if not live.done.done():
                self._finish(live, JobState.FAILED,
                             reason=f"could not start the job's supervisor: {e}")

    def _logs_full(self) -> bool:
        try:
            return shutil.disk_usage(self.store.logs_dir).free < 64 * 1024
        except OSError:
            return False

    def _space_short(self) -> str | None:
        """Why no job can start for lack of space: logs/ or results/ under MIN_FREE_BYTES, or
        logs/ under MIN_FREE_INODES."""
        for what, path in (("log and records", self.store.logs_dir),
                           ("results", self.root / "results")):
            try:
                st = os.statvfs(path)
            except OSError:
                continue
            free = st.f_bavail * st.f_frsize
            if free < MIN_FREE_BYTES:
                return (f"cannot start a job: {path} is full ({free} bytes free, need "
                        f"{MIN_FREE_BYTES}); no space left for its {what}")
            # f_files == 0: a filesystem without an inode limit (btrfs, ...)
            if path == self.store.logs_dir and st.f_files and st.f_favail < MIN_FREE_INODES:
                return (f"cannot start a job: {path} is out of inodes ({st.f_favail} free, "
                        f"need {MIN_FREE_INODES}); no space left for its log and records")
        return None

    def _check_space(self, note: str = "") -> None:
        short = self._space_short()
        if short is not None:
            raise InsufficientStorage(short + (f"; {note}" if note else ""))

    def _save_first(self, rec: JobRecord) -> None:
        """Write a new job's first record, or refuse the job: one whose record cannot be
        written would run with no trace on disk. ENOSPC/EDQUOT -> InsufficientStorage."""
        try:
            self.store.save(rec)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    f"cannot start a job: {self.store.logs_dir} is full (no space left on "
                    f"device: {e.strerror}); its record could not be written") from None
            raise

    async def _spawn(self, live: _Live, argv: list[str]) -> None:
        started = await self.executor.start(live.marks, argv, live.limits)
        live.handle = started.handle
        live.task = self._spawn_task(self._run(live))
        if started.running:
            rec = self._jobs[live.job_id]
            self._update(rec, status=JobState.RUNNING, started_at=utc_now(),
                         supervisor_pid=live.handle.pid,
                         supervisor_start_ticks=live.handle.ticks, pgid=live.handle.pgid)
            live.started.set_result(None)
            self._preempt()  # a higher priority may have arrived while it was starting
        else:
            await asyncio.shield(live.done)  # _run finalizes from the exit record

    # following a live job ----------------------------------------------------------------
    @staticmethod
    def _spawn_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_task_failure)
        return task

    async def _run(self, live: _Live) -> None:
        """Follow the job to its end. An OSError on the way (out of descriptors while clients
        hold them all, ...) must not lose the job: follow it again from the start (progress
        parsing is idempotent, a reaped supervisor is simply gone) until it is finalized."""
        while True:
            try:
                await self._run_once(live)
                return
            except OSError as e:
                log.warning("job %s: following it failed (%s); retrying in %g s",
                            live.job_id, e, FOLLOW_RETRY_S)
                await asyncio.sleep(FOLLOW_RETRY_S)

    async def _run_once(self, live: _Live) -> None:
        """Follow progress until the supervisor exits, then finalize from its exit record."""
        reader = _ProgressReader(live.paths.log)
        tracker = asyncio.get_running_loop().create_task(self._track(live, reader))
        try:
            await self.executor.wait(live.handle)
        finally:
            tracker.cancel()
            try:
                await tracker
            except asyncio.CancelledError:
                pass
        await self._scan_progress(live.job_id, reader)  # the supervisor is gone: log complete
        self._finalize_from_disk(live)

    async def _track(self, live: _Live, reader: _ProgressReader) -> None:
        while True:
            if not await self._feed(live.job_id, reader):
                await live.tailer.wait_beyond(reader.pos)

    async def _feed(self, job_id: str, reader: _ProgressReader, final: bool = False) -> bool:
        """One step of `reader` in a worker thread (it reads up to READ_CHUNK of the log: not
        on the event loop), its progress applied; returns whether more is waiting. A step
        under way when the caller is cancelled is finished and applied before the
        cancellation goes on, so no second step runs on the reader meanwhile and none of
        its progress is lost."""
        step = asyncio.ensure_future(asyncio.to_thread(reader.feed, final))
        try:
            objs, more = await asyncio.shield(step)
        except asyncio.CancelledError:
            await asyncio.wait([step])  # wait() does not cancel what it waits for
            if not step.cancelled() and step.exception() is None:
                self._apply_progress(job_id, step.result()[0])
            raise
        self._apply_progress(job_id, objs)
        return more

    def _apply_progress(self, job_id: str, objs: list[dict]) -> None:
        if not objs:
            return
        rec = self._jobs[job_id]
        prog = rec.progress or Progress()
        run_dir = rec.run_dir
        for o in objs:
            try:
                prog = Progress(k=int(o.get("k") or 0), total=int(o.get("total") or 0),
                                experiment=_opt_str(o.get("experiment")),
                                adapter=_opt_str(o.get("adapter")),
                                phase=_opt_str(o.get("phase")), run_id=_opt_str(o.get("run_id")),
                                n=_opt_int(o.get("n"), prog.n),
                                seed=_opt_int(o.get("seed"), prog.seed))
            except (TypeError, ValueError):
                continue
            if o.get("phase") == "published" and _opt_str(o.get("run_dir")) is not None:
                run_dir = o["run_dir"]
        if prog == rec.progress and run_dir == rec.run_dir:
            return
        self._stage(msgspec.structs.replace(rec, progress=prog, run_dir=run_dir))

    def _stage(self, new: JobRecord) -> None:
        """A change that is not a transition (progress, cancel accepted): current in memory
        and for watchers now, written to disk within PROGRESS_FLUSH_S (or with the next
        transition), so that neither log lines nor a cancel wait for an fsync."""
        self._jobs[new.job_id] = new
        self._notify(new)
        self._dirty.add(new.job_id)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(PROGRESS_FLUSH_S,
                                                                       self._flush)

    async def _scan_progress(self, job_id: str, reader: _ProgressReader | None = None) -> None:
        """Apply the progress lines of a complete log (from `reader`'s position, else the start)."""
        reader = reader or _ProgressReader(self.store.paths(job_id).log)
        while await self._feed(job_id, reader, final=True):
            pass

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for job_id in dirty:
            self._persist(self._jobs[job_id])

    def _finalize_from_disk(self, live: _Live) -> None:
        rec = self._jobs[live.job_id]
        ex = self.executor.outcome(live.job_id)
        if ex is None:
            killed = self.executor.leftovers_note(self.executor.kill_leftovers(
                live.marks, rec.pgid, self.executor.info(live.job_id)))
            if self._logs_full():  # the usual reason: the job's output filled the disk
                self._finish(live, JobState.FAILED,
                             reason=f"the logs filesystem {self.store.logs_dir} is full (no "
                                    f"space left on device): the job's output and its exit "
                                    f"record could not be written; {killed}")
                return
            if rec.status == JobState.STARTING:  # it never said "running": nothing ran
                self._finish(live, JobState.FAILED,
                             reason=f"supervisor (pid {live.handle.pid}) exited before "
                                    f"starting the orchestrator (see the job log); {killed}")
                return
            self._finish(live, JobState.UNKNOWN,
                         reason=f"supervisor (pid {live.handle.pid}) exited without an exit"
                                f" record; {killed}")
            return
        self._finish(live, *self._outcome(rec, ex), exit=ex)

    def _outcome(self, rec: JobRecord, ex: ExitRecord) -> tuple[JobState, str | None]:
        cancelled = ex.cancelled and ex.stopped_for is None  # a cancel wins over a pause
        if rec.status in STOPPING and not cancelled \
                and (ex.checkpointed or ex.stopped_for is not None):
            # stopped as asked (at a boundary, or by the SIGTERM of --now): kept, to resume
            state = JobState.PREEMPTED if rec.status == JobState.PREEMPTING else JobState.PAUSED
            run = rec.progress.run_id if rec.progress else None
            kept = f"; staged run {run} kept, resumed when it starts again" if run else ""
            return state, (ex.reason or state.value) + kept
        if ex.cancelled:
            return JobState.CANCELLED, ex.reason  # "cancelled by alice: ..." (supervisor's)
        if ex.exit_code == 0:
            return JobState.COMPLETED, None
        reason = ex.reason or "failed"
        last = _last_error_line(self.store.paths(rec.job_id).log)
        if last:  # killed by a signal too: its last words are what a person needs
            reason = f"{reason}: {last}"
        return JobState.FAILED, reason

    def _finish(self, live: _Live | None, status: JobState, reason: str | None, *,
                exit: ExitRecord | None = None, job_id: str | None = None) -> JobRecord:
        job_id = live.job_id if live else job_id
        assert job_id is not None
        rec = self._jobs[job_id]
        fields: dict = dict(status=status, reason=reason,
                            finished_at=exit.finished_at if exit else utc_now())
        usage = _usage_after(rec, exit)
        if status in WAITING:  # paused/preempted: kept, to start again from its staged run
            fields = dict(status=status, reason=reason, stop_mode=None,
                          resume_run=(rec.progress.run_id if rec.progress
                                      and rec.progress.run_id else rec.resume_run),
                          checkpoints=rec.checkpoints + 1, spawn_attempts=0,
                          supervisor_pid=None, supervisor_start_ticks=None, pgid=None, **usage)
        elif exit is not None:
            fields.update(exit_code=exit.exit_code, signal=exit.signal, **usage)
            if exit.cancelled and rec.cancel_requested_by is None:
                order = self.store.read_cancel(job_id)  # accepted, but not yet in the record
                if order is not None and order.purpose is None:
                    fields.update(cancel_requested_by=order.requester_uid,
                                  cancel_grace=order.grace)
        self._dirty.discard(job_id)
        new = self._update(rec, **fields)  # its side files go once this is on disk (_save)
        if live is not None:
            if self._live.get(live.job_id) is live:
                del self._live[live.job_id]
            if not live.started.done():
                live.started.set_result(None)
            if not live.done.done():
                live.done.set_result(None)
            asyncio.get_running_loop().create_task(live.tailer.close())
        self._dispatch()  # a slot is free, or a dependency settled
        return new

    # cancel ------------------------------------------------------------------------------
    async def cancel(self, job_id: str, uid: int, grace: float | None = None) -> JobRecord:
        """Ask the job's supervisor to stop it (SIGTERM, SIGKILL after `grace`); returns the
        final record. The supervisor finishes the escalation even if benchd dies meanwhile."""
        rec = self.get(job_id)
        if grace is not None:
            if isinstance(grace, bool) or not isinstance(grace, (int, float)) \
                    or not math.isfinite(grace) or not 0 <= grace <= GRACE_MAX_S:
                raise InvalidRequest(f"grace: must be a number of seconds between 0 and "
                                     f"{GRACE_MAX_S:g}, got {grace!r}")
        if rec.status in FINAL:
            raise NotCancellable(f"job {job_id} is already {rec.status.value}")
        await self._check_owner(rec, uid, "cancel")
        rec = self._jobs[job_id]
        if rec.status in WAITING:  # no process: at once
            new = self._update(rec, status=JobState.CANCELLED, cancel_requested_by=uid,
                               finished_at=utc_now(),
                               reason=f"cancelled by uid {uid} while {rec.status.value} (no "
                                      f"process was running)")
            self._dispatch()  # its dependents may now fail
            return new
        live = self._live.get(job_id)
        if live is None:
            raise NotCancellable(f"job {job_id} is {rec.status.value}, not running here")
        await asyncio.shield(live.started)
        g = self.grace if grace is None else float(grace)
        if not live.done.done():
            # the executor carries the order out even if benchd dies; the record says it was
            # accepted -- written after the signal, off the fast path
            self.executor.stop(live.handle, CancelOrder(requester_uid=uid, grace=g,
                                                        requested_at=utc_now()))
            rec = self._jobs[job_id]
            if rec.status not in FINAL:  # watchers see it now; the disk within PROGRESS_FLUSH_S
                self._stage(msgspec.structs.replace(
                    rec, cancel_requested_by=(rec.cancel_requested_by
                                              if rec.cancel_requested_by is not None else uid),
                    cancel_grace=g if rec.cancel_grace is None else min(g, rec.cancel_grace)))
        try:
            await asyncio.wait_for(asyncio.shield(live.done), g + CANCEL_MARGIN_S)
        except asyncio.TimeoutError:
            raise CancelFailed(f"job {job_id} is still running {g + CANCEL_MARGIN_S:g} s after "
                               f"the cancel (supervisor pid {live.handle.pid})") from None
        return self._jobs[job_id]

    def run_owners(self, run_id: str) -> dict[int, str]:
        """uid -> name of whoever's job created results run `run_id` (a resume does not make
        its requester an owner: anyone may finish a run, only its owner may throw it away)."""
        return {rec.requester_uid: rec.requester_name for rec in self._jobs.values()
                if rec.config.resume is None
                and rec.progress is not None and rec.progress.run_id == run_id}

    def is_admin(self, uid: int) -> bool:
        """root, or a member of the daemon's admin group: may act on anyone's jobs and runs."""
        if uid == 0:
            return True
        if self.admin_gid is None:
            return False
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return False
        return self.admin_gid in os.getgrouplist(pw.pw_name, pw.pw_gid)

    # retention ---------------------------------------------------------------------------
    def mark_run_removed(self, run_id: str, why: str) -> None:
        """Records of jobs whose results run `run_id` was deleted say so (history must not
        point at a run that is gone)."""
        for rec in list(self._jobs.values()):
            if rec.status in FINAL and rec.progress is not None \
                    and rec.progress.run_id == run_id and rec.run_removed is None:
                self._update(rec, run_removed=why)

    async def forget_jobs(self, job_ids: list[str]) -> list[tuple[str, float]]:
        """Delete final jobs' records and logs (retention's keep-job-days): each job's files
        are renamed into logs/.trash in one step each, then deleted, off the event loop.
        Returns (job id, days since it finished) of those removed."""
        needed = {d for w in self._waiting for d in (*(self._jobs[w].config.after or ()),
                                                     *(self._jobs[w].config.after_any or ()))}
        recs = [self._jobs[j] for j in job_ids if j in self._jobs
                and self._jobs[j].status in FINAL and j not in self._live
                and j not in needed]  # a waiting job's dependency must stay known
        if not recs:
            return []
        gone = await asyncio.to_thread(self.store.trash_jobs, [r.job_id for r in recs])
        dropped = set(gone)
        for job_id in gone:
            self._jobs.pop(job_id, None)
        self._order = [j for j in self._order if j not in dropped]
        self._index = {job_id: i for i, job_id in enumerate(self._order)}
        now = time.time()
        out = []
        for rec in recs:
            if rec.job_id in dropped:
                try:
                    t = datetime.fromisoformat(rec.finished_at or rec.created_at).timestamp()
                except ValueError:
                    t = now
                out.append((rec.job_id, max(0.0, (now - t) / 86400.0)))
        return out

    # logs --------------------------------------------------------------------------------
    def log_path(self, job_id: str) -> Path:
        return self.store.paths(self.get(job_id).job_id).log

    def log_size(self, job_id: str) -> int:
        try:
            return self.log_path(job_id).stat().st_size
        except FileNotFoundError:
            return 0

    async def tail_offset(self, job_id: str, lines: int) -> int:
        """Where the last `lines` lines of the log start. A short tail (`tail -n 20`) is
        looked for in the last TAIL_BLOCK bytes right here: one bounded read, cheaper than a
        thread hop, which under load costs milliseconds and would queue a hundred clients
        behind TAIL_SCANS. Anything else is scanned in a worker thread, at most TAIL_SCANS
        at once, back at most TAIL_SCAN_MAX bytes: lines that begin before that give the
        whole log (0), as do more lines than the log has."""
        path = self.log_path(job_id)
        if lines <= TAIL_QUICK_LINES:
            off = logtail.tail_offset(path, lines, limit=logtail.TAIL_BLOCK)
            if off is not None:
                return off
        off = await self._scans.run(logtail.tail_offset, path, lines)
        return 0 if off is None else off

    def follow_log(self, job_id: str, offset: int = 0,
                   follow: bool = True) -> AsyncIterator[bytes]:
        """Chunks of the log from `offset` (see logtail.follow); errors raise here, not on
        the first iteration."""
        path = self.log_path(job_id)
        size = self.log_size(job_id)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidRequest(f"offset: must be a non-negative integer, got {offset!r}")
        if offset > size:
            raise InvalidRequest(f"offset: {offset} is past the end of the log ({size} bytes)")
        live = self._live.get(job_id)
        return logtail.follow(path, offset, live.tailer if (live and follow) else None)

    async def watch(self, job_id: str) -> AsyncIterator[JobRecord]:
        """The current record, then the record after each change, until it is final (changes
        that happen while the consumer is busy are coalesced into the latest record)."""
        rec = self.get(job_id)
        while True:
            yield rec
            if rec.status in FINAL:
                return
            while self._jobs[job_id] is rec:  # every change replaces the record object
                await self._changed.setdefault(job_id, asyncio.Event()).wait()
            rec = self._jobs[job_id]

    # records -----------------------------------------------------------------------------
    def _update(self, rec: JobRecord, **fields: object) -> JobRecord:
        status = fields.get("status")
        if isinstance(status, JobState) and status != rec.status \
                and not can_transition(rec.status, status):
            raise RuntimeError(f"job {rec.job_id}: {rec.status} -> {status} is not allowed")
        new = msgspec.structs.replace(rec, **fields)
        self._jobs[rec.job_id] = new
        if new.status in WAITING:
            self._waiting.add(rec.job_id)
        else:
            self._waiting.discard(rec.job_id)
        if rec.status in WAITING or new.status in WAITING:
            self._positions = None
            self._qlist = None
        if new.status == JobState.COMPLETED and rec.status != new.status:
            self._typical.clear()
        if self.on_transition is not None and new.status != rec.status:
            try:  # before the write: a crash between the two derives the event again
                self.on_transition(new)
            except Exception:
                log.exception("on_transition callback failed")
        self._persist(new)
        if new.status != rec.status:
            audit.transition(new)
        return new

    def _persist(self, rec: JobRecord) -> None:
        """Write the record; if the disk refuses (full), keep it in memory, say so, and write
        it at the next change or at close: the job layer must not stall on a full disk."""
        self._unsaved.discard(rec.job_id)
        for job_id in list(self._unsaved):  # earlier failures first
            self._save(self._jobs[job_id])
        self._save(rec)
        self._announce(rec)

    def _announce(self, rec: JobRecord) -> None:
        """Tell watchers and the on_change hook about a record now current in memory."""
        self._notify(rec)
        if self.on_change is not None:
            try:
                self.on_change(rec)
            except Exception:
                log.exception("on_change callback failed")

    def _save(self, rec: JobRecord) -> None:
        """The one place records are written after start. A final record's supervisor files
        (exit record, cancel order, lock, pid, reserve) are removed only here, once it is
        durable: until then they are the outcome's only copy on disk, which a restart reads."""
        try:
            self.store.save(rec)
        except OSError as e:
            if rec.job_id not in self._unsaved:
                log.error("job %s: cannot write its record (%s); the current state (%s) is "
                          "kept in memory and written at the next change", rec.job_id, e,
                          rec.status.value)
            self._unsaved.add(rec.job_id)
        else:
            self._unsaved.discard(rec.job_id)
            if rec.status in FINAL or (rec.status in WAITING and rec.checkpoints):
                self.store.remove_aux(rec.job_id)  # kept: its next start needs none of them

    def _notify(self, rec: JobRecord) -> None:
        ev = self._changed.pop(rec.job_id, None)
        if ev is not None:
            ev.set()

    # restart -----------------------------------------------------------------------------
    async def reconcile(self) -> list[str]:
        """Load the history and settle every job that was not final: finalize it from its
        exit record, reattach to its live supervisor, or kill its leftovers and mark it
        UNKNOWN (FAILED when it provably never started). One line per action."""
        records, lines, orphans = self.store.load_with_orphans()
        rebuilt = [r for r in map(self._rebuild_record, orphans) if r is not None]
        for rec in rebuilt:
            # a full disk: kept in memory (_unsaved), written -- its damaged file moved aside
            # first -- at the next change or at close, like any record the disk refused
            self._save(rec)
            lines.append(f"job {rec.job_id}: record missing or damaged; rebuilt from its "
                         f"supervisor's files")
        if rebuilt:
            records = sorted(records + rebuilt, key=lambda r: (r.created_at, r.job_id))
        self._jobs = {r.job_id: r for r in records}
        self._order = [r.job_id for r in records]
        self._index = {job_id: i for i, job_id in enumerate(self._order)}
        self._waiting = {r.job_id for r in records if r.status in WAITING}
        self._seq = max((r.queue_seq or 0 for r in records), default=0)
        self._vclock = max((r.queue_key or 0 for r in records if r.spawn_attempts), default=0)
        self._positions = None
        self._settling = True  # nothing starts until every active job is settled
        respawn: list[JobRecord] = []
        try:
            for rec in [r for r in records if r.status in ACTIVE]:
                lines.append(await self._reconcile_one(rec, respawn))
        finally:
            self._settling = False
        for rec in respawn:
            tail = self._queued_argv(rec)
            if tail is not None:
                self._begin(self._update(rec, spawn_attempts=rec.spawn_attempts + 1), tail)
        if self._waiting:
            lines.append(f"{len(self._waiting)} job(s) waiting in the queue")
        self._dispatch()
        return lines  # the caller reports them (benchd.server logs each one)

    def _rebuild_record(self, job_id: str) -> JobRecord | None:
        """An ACTIVE record for a job known only by its supervisor's files, for
        _reconcile_one to settle like any other (reattach, finalize, or unknown). Who asked
        for it and with what config died with the record: said so, never guessed. None when
        there is nothing to settle (a stale lock nobody holds)."""
        paths = self.store.paths(job_id)
        info, ex = self.executor.info(job_id), self.executor.outcome(job_id)
        if info is None and ex is None and not self.executor.holds_lock(job_id):
            for p in paths.aux():
                p.unlink(missing_ok=True)
            return None
        try:
            created = utc_from_timestamp(paths.lock.stat().st_mtime)
        except OSError:
            created = info.started_at if info else utc_now()
        return JobRecord(
            job_id=job_id, status=JobState.RUNNING if info else JobState.STARTING,
            config=JobConfig(), requester_uid=-1, requester_name=RECOVERED_REQUESTER,
            created_at=created, started_at=info.started_at if info else None,
            supervisor_pid=info.supervisor_pid if info else None,
            supervisor_start_ticks=info.supervisor_start_ticks if info else None,
            pgid=info.pgid if info else None, job_token=info.job_token if info else None,
            root_id=info.root_id if info else None, cpuset=info.cpus if info else None)

    def _own_info(self, rec: JobRecord) -> SupervisorInfo | None:
        """The job's pid file, unless it names another job instance (another token)."""
        info = self.executor.info(rec.job_id)
        if info is not None and rec.job_token and info.job_token not in (None, rec.job_token):
            log.warning("job %s: ignoring %s: it is another job instance's (other token)",
                        rec.job_id, self.store.paths(rec.job_id).info)
            return None
        return info

    async def _reconcile_one(self, rec: JobRecord, respawn: list[JobRecord]) -> str:
        job_id = rec.job_id
        paths = self.store.paths(job_id)
        ex = self.executor.outcome(job_id)
        info = self._own_info(rec)
        pid = rec.supervisor_pid or (info.supervisor_pid if info else None)
        ticks = rec.supervisor_start_ticks or (info.supervisor_start_ticks if info else None)
        if ex is None and pid is None and self.executor.holds_lock(job_id):
            # a supervisor is starting up under us: give it a moment to write its pid file
            deadline = time.monotonic() + 5.0
            while info is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                info = self._own_info(rec)
            if info is not None:
                pid, ticks = info.supervisor_pid, info.supervisor_start_ticks
        token = rec.job_token or (info.job_token if info else None)
        started_in = rec.root_id or (info.root_id if info else None)
        foreign = started_in is not None and started_in != self.root_id
        marks = procs.JobMarks(job_id, token, self.root_id)
        # ours only if this root started it: a copy's lock may even be the same inode (cp -al)
        alive = not foreign and self.executor.is_ours(marks, pid, ticks)
        if ex is not None and not alive:
            await self._scan_progress(job_id)  # the run_dir it published while nobody watched
            new = self._finish(None, *self._outcome(rec, ex), exit=ex, job_id=job_id)
            return (f"job {job_id}: finished while benchd was down; recorded {new.status.value}"
                    + (f" ({new.reason})" if new.reason else ""))
        if foreign:
            why = (f"started by another root (identity {started_in}; this root is "
                   f"{self.root_id}): these logs are a copy, snapshot or backup, or the root "
                   f"moved to another filesystem; no process was signalled, since any that "
                   f"still run belong to that root")
            self._finish(None, JobState.UNKNOWN, job_id=job_id, reason=why)
            return f"job {job_id}: {why}; recorded unknown"
        if alive:
            live = _Live(job_id, paths, marks)
            live.handle = Handle(job_id, pid, ticks, rec.pgid or (info.pgid if info else None))
            live.started.set_result(None)
            self._live[job_id] = live
            fields: dict = dict(supervisor_pid=pid, supervisor_start_ticks=ticks)
            if rec.cpuset is None and info is not None and info.cpus:
                fields.update(cpuset=info.cpus)  # what it was pinned to holds its CPUs
            if rec.status == JobState.STARTING:
                fields.update(status=JobState.RUNNING,
                              started_at=info.started_at if info else utc_now(),
                              pgid=info.pgid if info else None)
            order = self.store.read_cancel(job_id)
            if order is not None and order.purpose is None and rec.cancel_requested_by is None:
                # accepted by the previous benchd, which died before writing it down: the
                # supervisor is acting on it, so the record must say so
                fields.update(cancel_requested_by=order.requester_uid, cancel_grace=order.grace)
            rec = self._update(rec, **fields)
            live.task = self._spawn_task(self._run(live))
            if rec.status in STOPPING:  # the intent was written; the ask may not have been
                if not (rec.stop_mode == StopMode.NOW and order is not None):
                    self._signal_stop(live, rec, 0)  # (a SIGTERM order on disk is acted on)
                return (f"job {job_id}: supervisor pid {pid} still running; reattached, "
                        f"{rec.status.value} ({rec.stop_mode}) asked again")
            return f"job {job_id}: supervisor pid {pid} still running; reattached"
        # a supervisor spawned just before the crash, not yet holding its lock, carries the
        # marks: killed here, before the orchestrator (which it starts only once locked) ran
        killed = self.executor.kill_leftovers(marks, rec.pgid or (info.pgid if info else None),
                                              info)
        if pid is None and rec.status == JobState.STARTING \
                and 0 < rec.spawn_attempts < MAX_SPAWN_ATTEMPTS:
            # the spawn intent was written, then benchd died before the supervisor ran the
            # orchestrator: nothing of it runs now (lock free, marks killed), so start it again
            respawn.append(rec)
            return (f"job {job_id}: benchd stopped while starting it (attempt "
                    f"{rec.spawn_attempts}); {self.executor.leftovers_note(killed)}; starting it again")
        if pid is None and rec.status == JobState.STARTING:
            again = (f" (attempt {rec.spawn_attempts}; not tried again: it never started)"
                     if rec.spawn_attempts else "")
            self._finish(None, JobState.FAILED, job_id=job_id,
                         reason=f"benchd stopped before the job's supervisor was started{again}")
            return f"job {job_id}: never started; recorded failed"
        elif self._logs_full():  # its output filled the disk, so no exit record either
            why = (f"the logs filesystem {self.store.logs_dir} is full (no space left on "
                   f"device): the job's output and its exit record could not be written "
                   f"while benchd was down; {self.executor.leftovers_note(killed)}")
            self._finish(None, JobState.FAILED, job_id=job_id, reason=why)
            return f"job {job_id}: {why}; recorded failed"
        else:
            why = (f"supervisor (pid {pid}) vanished while benchd was down and left no exit "
                   f"record; {self.executor.leftovers_note(killed)}")
        self._finish(None, JobState.UNKNOWN, job_id=job_id, reason=why)
        return f"job {job_id}: {why}; recorded unknown"

    async def close(self, *, cancel_running: bool = False) -> None:
        """Stop following jobs. A running job keeps running (a restarted benchd reattaches)
        unless `cancel_running`, in which case it is cancelled with the default grace."""
        self._settling = True  # a queued job must not start while benchd stops
        for live in list(self._live.values()) if cancel_running else []:
            try:
                await self.cancel(live.job_id, 0)
            except (NotCancellable, CancelFailed) as e:
                log.warning("close: %s", e.message)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        for live in list(self._live.values()):
            if live.task is None:
                continue
            live.task.cancel()
            try:
                await live.task
            except asyncio.CancelledError:
                pass
            self._flush()
            await live.tailer.close()
        for job_id in list(self._unsaved):
            self._save(self._jobs[job_id])


def _last_error_line(path: Path, window: int = 8192) -> str | None:
    """The last non-empty, non-progress, non-supervisor line of the log (truncated)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - window))
            data = f.read()
    except OSError:
        return None
    for raw in reversed(data.splitlines()):
        line = raw.decode("utf-8", "replace").strip()
        if line and not line.startswith(("@@", "[benchd-supervisor]")):
            return line[:200]
    return None


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("job follower failed", exc_info=task.exception())


def _opt_int(value: object, default: int | None) -> int | None:
    """An int from a progress line, else what was known before (only "start" carries n)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _order_key(rec: JobRecord) -> tuple[int, int, int]:
    return scheduler.order_key(rec.priority, rec.queue_key or rec.queue_seq or 0,
                               rec.queue_seq or 0)


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) and len(v) <= PROGRESS_FIELD_MAX else None


def _usage_after(rec: JobRecord, exit: ExitRecord | None) -> dict[str, Any]:
    """The accounting fields of a job after one more segment ended: CPU time adds up over the
    segments of a paused or preempted job, peak memory is the largest of them."""
    if exit is None:
        return {}

    def add(a: float | None, b: float | None) -> float | None:
        return None if a is None and b is None else (a or 0.0) + (b or 0.0)
    peaks = [p for p in (rec.peak_memory_bytes, exit.max_rss_bytes) if p is not None]
    return dict(cpu_user_s=add(rec.cpu_user_s, exit.cpu_user_s),
                cpu_sys_s=add(rec.cpu_sys_s, exit.cpu_sys_s),
                peak_memory_bytes=max(peaks) if peaks else None)
