"""Where a job's files live (stdlib only: the per-job supervisor needs this before anything
else, and must not pay for msgspec on the path to starting the orchestrator).

Under <root>/logs:
  jobs/<id>.json    JobRecord (benchd; rewritten atomically on every transition)
  <id>.log          the orchestrator's stdout+stderr (O_APPEND, written by the job itself)
  jobs/<id>.lock    flock held by the job's supervisor for its whole life
  jobs/<id>.pid     SupervisorInfo (supervisor, once the orchestrator runs)
  jobs/<id>.cancel  CancelOrder (benchd, before it signals the supervisor)
  jobs/<id>.exit    ExitRecord (supervisor, when the job is over; benchd may be down)
  jobs/<id>.reserve space the supervisor sets aside for the records of a job that fills logs/
  jobs/<id>.checkpoint  a checkpoint request (benchd's executor; pipeline.checkpoint)
  jobs/corrupt/     damaged job files moved aside (malformed, or not a small regular file)
Only `<12 hex>.json` files are records.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path


def utc_now() -> str:
    """Wall-clock time for people and records: UTC ISO-8601 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def utc_from_timestamp(ts: float) -> str:
    """A file time (st_mtime) in utc_now's format."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")


class JobPaths:
    """The files of one job (job_id must already match JOB_ID_RE)."""

    def __init__(self, root: Path, job_id: str) -> None:
        jobs = Path(root) / "logs" / "jobs"
        self.job_id = job_id
        self.record = jobs / f"{job_id}.json"
        self.log = Path(root) / "logs" / f"{job_id}.log"
        self.lock = jobs / f"{job_id}.lock"
        self.info = jobs / f"{job_id}.pid"
        self.cancel = jobs / f"{job_id}.cancel"
        self.exit = jobs / f"{job_id}.exit"
        self.reserve = jobs / f"{job_id}.reserve"
        self.checkpoint = jobs / f"{job_id}.checkpoint"

    def aux(self) -> tuple[Path, ...]:
        """The supervisor's side files: removed only once a final (or kept: paused,
        preempted) record is durable."""
        return (self.lock, self.info, self.cancel, self.exit, self.reserve, self.checkpoint)
