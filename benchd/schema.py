"""The one definition of every wire body and every job file on disk (msgspec Structs).

benchd and benchctl both import this module; it must stay cheap to import (msgspec + stdlib).
Files on disk carry `schema_version`; bump it when a field changes meaning.
Results files (manifest, per-library results) are the pipeline's, in pipeline/schema.py.
"""
from __future__ import annotations

import re

import msgspec

from benchd.errors import InvalidRequest
from benchd.states import JobState, StopFor, StopMode

SCHEMA_VERSION = 1
JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")  # secrets.token_hex(6); never a path
LABEL_MAX = 64


def check_label(label: str | None) -> None:
    """A job label is at most LABEL_MAX printable characters (it is shown in tables and
    logged in the audit trail: no control characters, no newlines)."""
    if label is None:
        return
    shown = label if len(label) <= 70 else label[:70] + "…"
    if not label or len(label) > LABEL_MAX:
        raise InvalidRequest(f"label: must be 1 to {LABEL_MAX} characters, got {len(label)} "
                             f"({shown!r})")
    if not label.isprintable():
        raise InvalidRequest(f"label: must be printable characters only (no control "
                             f"characters or newlines), got {shown!r}")


class NotifyTarget(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Where to tell about a job's events (benchd.notifications.targets checks the values).
    `secret` (webhooks: Standard Webhooks `whsec_...`) is write-only: benchd keeps it in a
    0600 file and never returns or logs it; records carry the target without it."""
    url: str                              # https://..., http://..., mailto:user@host
    on: list[str] | None = None           # event names or aliases; None = the final states
    secret: str | None = None


class JobConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of POST /api/benchmark/jobs; every field optional (pipeline defaults apply).
    Value checks (names, ranges) live in pipeline.catalog.validate_config."""
    experiments: list[str] | None = None
    n: int | None = None
    seed: int | None = None
    perf_rounds: int | None = None
    no_perf: bool = False
    ci: bool = False
    resume: str | None = None   # a staged run id: finish it with its stored config (alone)
    label: str | None = None    # free text for people and filters (check_label), e.g. nightly
    notify: list[NotifyTarget] | None = None  # per-job notification targets (secrets redacted
                                              # in the record: see NotifyTarget)
    # scheduling (benchd.scheduler; README "Queue"): not part of what the pipeline runs
    queue: bool = True          # false: refuse (409 busy) instead of queueing when no slot
    priority: int = 0           # -10..10; above 0 needs root or the admin group
    after: list[str] | None = None       # job ids that must complete first (afterok)
    after_any: list[str] | None = None   # job ids that must end first, whatever the outcome
    # when this job preempts a lower-priority running one: "boundary" (default: at its next
    # experiment boundary, nothing redone) or "now" (SIGTERM; its current experiment redone)
    preempt: StopMode | None = None

    # resources (benchd.cpusets; README "CPUs and memory"): where and within what it runs
    cpus: int = 1               # CPUs it is pinned to (and BLAS/OpenMP threads it may use)
    exclusive: bool = False     # every CPU benchd manages; waits until no other job runs
    memory_max: int | str | None = None  # bytes or "4G"; at most benchd's --job-memory-max


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of POST /api/benchmark/jobs/{id}/cancel (the body itself is optional)."""
    grace: float | None = None  # seconds between SIGTERM and SIGKILL; daemon default if None


class JobPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of PATCH /api/benchmark/jobs/{id}: what may change while a job waits or runs."""
    priority: int | None = None   # -10..10; above 0 needs root or the admin group


class PauseRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of POST /api/benchmark/jobs/{id}/pause (optional)."""
    now: bool = False             # a running job: SIGTERM now, not at the next boundary


class Progress(msgspec.Struct, omit_defaults=True):
    """Where a job is, parsed from the pipeline's progress lines (pipeline.progress)."""
    k: int = 0                   # experiments finished or in progress, 1-based while running
    total: int = 0
    experiment: str | None = None
    adapter: str | None = None
    phase: str | None = None
    run_id: str | None = None
    n: int | None = None         # what the run actually uses (from its "start" line): the
    seed: int | None = None      # request may have left them to defaults or to a resumed run


class JobRecord(msgspec.Struct, omit_defaults=False):
    """logs/jobs/<job_id>.json, rewritten atomically on every transition; also the API body."""
    job_id: str
    status: JobState
    config: JobConfig
    requester_uid: int
    requester_name: str
    created_at: str                       # UTC ISO-8601
    started_at: str | None = None         # orchestrator running
    finished_at: str | None = None
    exit_code: int | None = None          # orchestrator's exit status when it exited
    signal: str | None = None             # e.g. "SIGKILL" when it was killed by a signal
    run_dir: str | None = None            # results run directory it published, relative to root
    progress: Progress | None = None
    reason: str | None = None             # human-readable, when it did not complete
    cancel_requested_by: int | None = None
    cancel_grace: float | None = None
    supervisor_pid: int | None = None
    supervisor_start_ticks: int | None = None  # /proc/<pid>/stat field 22: identity, not just pid
    pgid: int | None = None               # orchestrator's process group
    schema_version: int = SCHEMA_VERSION
    # which processes are this job's (benchd.procs.JobMarks); None in records written before
    # they existed. Not secrets: they authorise nothing, they only narrow what benchd kills.
    job_token: str | None = None          # per-job random token, also in the job's environment
    root_id: str | None = None            # "<st_dev>:<st_ino>" of the root that started it
    notify_status: str | None = None      # API only (null on disk): its notifications'
                                          # deliveries, e.g. "2 sent, 1 pending"
    staged_run: str | None = None         # API only (null on disk): the unpublished run a
                                          # failed/cancelled/unknown job left in .staging,
                                          # while it is there (benchd.api._with_staged_run)

    run_removed: str | None = None        # its results run was deleted by retention (why)
    # the queue (benchd.scheduler): persisted so that order and holds survive kill -9
    priority: int = 0                     # current priority (PATCH changes it)
    queue_seq: int | None = None          # enqueue sequence: FIFO order within a priority
    queue_key: int | None = None          # fair-queueing key (benchd.scheduler.next_key)
    spawn_attempts: int = 0               # supervisor spawns begun (written before each one)
    queue_position: int | None = None     # API only (null on disk): 1 = next to start
    estimated_start_s: float | None = None  # API only: seconds until it may start (a guess
                                            # from earlier comparable jobs' durations)
    # pause/preemption of a running job (README "Queue"): persisted before the job is asked
    stop_mode: StopMode | None = None     # while pausing/preempting: how it was asked
    preempted_by: str | None = None       # the higher-priority job it makes room for
    resume_run: str | None = None         # the staged run its next start resumes (same run
                                          # id and seed); set when it was stopped and kept
    checkpoints: int = 0                  # times it was stopped and kept (segments - 1)

    # isolation and accounting (benchd.cpusets, README "CPUs and memory"): persisted when
    # the job is given its CPUs, so that a restarted benchd knows them when it reattaches
    cpuset: list[int] | None = None       # CPUs it is pinned to (sched_setaffinity)
    memory_limit: int | None = None       # bytes: RLIMIT_DATA of each of its processes
    cpu_user_s: float | None = None       # final: user CPU time of all its processes
    cpu_sys_s: float | None = None        # final: system CPU time of all its processes
    peak_memory_bytes: int | None = None  # final: peak RSS of its largest process

    # --executor slurm (benchd.executors.slurm): the batch job that runs it, and what Slurm
    # last said about it, as Slurm says it ("PENDING (Priority)", "TIMEOUT (TimeLimit) 0:15")
    slurm_job_id: str | None = None
    slurm_state: str | None = None
    slurm_past_ids: list[str] | None = None  # earlier segments' batch jobs (paused, resumed)


class ExitRecord(msgspec.Struct):
    """Written atomically by the per-job supervisor when the orchestrator is gone, whether or
    not benchd is alive at that moment. benchd finalizes the job from it."""
    job_id: str
    exit_code: int | None
    signal: str | None
    cancelled: bool
    finished_at: str
    reason: str | None = None
    leftover_killed: int = 0              # processes of the group killed after the orchestrator
    schema_version: int = SCHEMA_VERSION
    checkpointed: bool = False            # exited EXIT_CHECKPOINTED (pipeline.checkpoint):
                                          # stopped at a boundary on request, resumable
    stopped_for: StopFor | None = None    # the purpose of the stop order it obeyed

    cpu_user_s: float | None = None       # getrusage(RUSAGE_CHILDREN) of the supervisor:
    cpu_sys_s: float | None = None        # every process of the job, once all are reaped
    max_rss_bytes: int | None = None      # ru_maxrss: the largest single process's peak RSS
    out_of_memory: bool = False           # it failed for want of memory under its limit


class JobList(msgspec.Struct):
    """GET /api/benchmark/jobs: one page, newest first."""
    jobs: list[JobRecord]
    next: str | None = None               # `before` cursor of the next (older) page; null: last
    total: int | None = None              # jobs matching the filters over all pages


class Health(msgspec.Struct):
    status: str                           # "ok"
    version: str
    pid: int
    uptime_s: float
    root: str
    socket: str
    active_job: JobRecord | None = None
    executor: str | None = None           # "local", or "slurm: ..." with slurmctld's state


class Delivery(msgspec.Struct, omit_defaults=True):
    """logs/notify/{pending,sent,dead}/<id>.json (0600: it holds the target's secret): one
    event for one target, written before the first attempt. `id` is derived from (job, event,
    target), so the same event is queued once however often it is derived (crash, restart)
    and a receiver sees the same `webhook-id` on every retry."""
    id: str
    type: str                             # event type, e.g. "job.completed"
    job_id: str
    target: NotifyTarget
    source: str                           # "job" (the job's own target) or "server"
    body: str                             # the JSON body, byte for byte on every attempt
    created_at: float                     # UNIX time (wall clock: survives restarts)
    next_attempt_at: float
    attempts: int = 0
    last_error: str | None = None
    delivered_at: float | None = None
    subject: str | None = None            # e-mail subject
    text: str | None = None               # e-mail body (plain text)
    schema_version: int = SCHEMA_VERSION


class DeliveryInfo(msgspec.Struct, omit_defaults=True):
    """A Delivery as the API shows it: no secret, and a server-wide target's address only to
    root and the admin group."""
    id: str
    type: str
    job_id: str
    target: str
    source: str
    status: str                           # pending, sent, dead
    attempts: int
    created_at: str
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    last_error: str | None = None


class DeliveryList(msgspec.Struct):
    deliveries: list[DeliveryInfo]


class NotifyTestResult(msgspec.Struct, omit_defaults=True):
    """POST /api/notify/test: what the receiver answered to one test event."""
    ok: bool
    target: str
    status: int | None = None             # HTTP status (webhooks) or SMTP reply code
    answer: str | None = None             # the start of the receiver's answer
    error: str | None = None              # why nothing was delivered

class PinRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of POST /api/results/{run}/pin."""
    note: str | None = None               # why it is kept (at most 200 characters)


class PruneAction(msgspec.Struct):
    run_id: str
    action: str                           # delete | archive
    rule: str                             # keep-days | keep-runs | max-results-size | ...
    size: int                             # bytes it frees (archive: before compression)
    age_days: float
    staged: bool = False
    done: bool = False                    # carried out (False in a dry run or if it failed)


class KeptRun(msgspec.Struct):
    run_id: str
    why: str                              # pinned | newest | in use | keep-runs
    size: int


class PruneReport(msgspec.Struct):
    """What a prune did (or, dry, would do) and what it was not allowed to delete."""
    dry_run: bool
    policy: str
    trigger: str
    actions: list[PruneAction]
    jobs: list[str]                       # job records (and logs) deleted or to delete
    kept: list[KeptRun]
    freed_bytes: int
    results_free_bytes: int | None = None
    logs_free_bytes: int | None = None


class RetentionHistory(msgspec.Struct):
    entries: list[dict]                   # logs/retention.jsonl lines, newest first


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    job_id: str | None = None             # busy (409): the active job, for scripts to act on


class ErrorBody(msgspec.Struct):
    """The one error shape: {"error": {"code": ..., "message": ...}}."""
    error: ErrorDetail


class LogMessage(msgspec.Struct, tag_field="type", tag="log", omit_defaults=True):
    line: str
    offset: int                           # byte offset just after this line
    partial: bool = False                 # a piece of a line longer than WS_MAX_LINE; the
                                          # next message continues it (offset: no newline)


class CancellingMessage(msgspec.Struct, tag_field="type", tag="cancelling"):
    by_uid: int
    grace: float


class DoneMessage(msgspec.Struct, tag_field="type", tag="done"):
    status: JobState
    exit_code: int | None = None


WsMessage = LogMessage | CancellingMessage | DoneMessage


# --- Per-job supervisor files (benchd-core). Not job records: they live beside them under
# --- other suffixes (<id>.cancel, <id>.pid) so a history scan never mistakes them.

class CancelOrder(msgspec.Struct):
    """logs/jobs/<id>.cancel, written atomically by benchd before it signals the supervisor
    (SIGUSR1). The supervisor re-reads it on every signal; a later, shorter grace wins."""
    requester_uid: int
    grace: float
    requested_at: str                     # UTC ISO-8601
    schema_version: int = SCHEMA_VERSION
    purpose: StopFor | None = None        # keep the job (pause/preemption --now); None: a
                                          # cancel


class SupervisorInfo(msgspec.Struct):
    """logs/jobs/<id>.pid, written atomically by the supervisor once the orchestrator runs:
    lets a restarted benchd find and verify the supervisor even if it died before recording it."""
    job_id: str
    supervisor_pid: int
    supervisor_start_ticks: int
    orchestrator_pid: int
    pgid: int
    started_at: str                       # UTC ISO-8601
    schema_version: int = SCHEMA_VERSION
    orchestrator_start_ticks: int | None = None  # identity of the group leader (pid reuse)
    job_token: str | None = None          # from the supervisor's environment (JobRecord's)
    root_id: str | None = None
    cpus: list[int] | None = None         # the CPUs the supervisor pinned itself to
