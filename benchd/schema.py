"""The one definition of every wire body and every job file on disk (msgspec Structs).

benchd and benchctl both import this module; it must stay cheap to import (msgspec + stdlib).
Files on disk carry `schema_version`; bump it when a field changes meaning.
Results files (manifest, per-library results) are the pipeline's, in pipeline/schema.py.
"""
from __future__ import annotations

import re

import msgspec

from benchd.states import JobState

SCHEMA_VERSION = 1
JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")  # secrets.token_hex(6); never a path


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


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Body of POST /api/benchmark/jobs/{id}/cancel (the body itself is optional)."""
    grace: float | None = None  # seconds between SIGTERM and SIGKILL; daemon default if None


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
    run_removed: str | None = None        # its results run was deleted by retention (why)


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


class JobList(msgspec.Struct):
    jobs: list[JobRecord]


class Health(msgspec.Struct):
    status: str                           # "ok"
    version: str
    pid: int
    uptime_s: float
    root: str
    socket: str
    active_job: JobRecord | None = None


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
