"""The executor interface: how one job is started, watched, signalled and reattached.

The scheduler side (benchd.jobs.JobManager with the policy of benchd.scheduler) decides which
job runs and keeps the records; an executor is the mechanism (see STYLE.md section 7, Nomad's
task drivers): it starts a job's processes, waits for them, asks them to stop (or to
checkpoint at their next experiment boundary: pause, preemption), and after a
benchd restart tells from what the job left behind (a persisted handle: supervisor pid +
start ticks, its pid file, lock and exit record) whether the job still runs or how it ended.
benchd.executors.local is the local executor (a supervisor process per job, process
groups); benchd.executors.slurm runs jobs as Slurm batch jobs and Slurm owns the queue (the
job layer benchd.slurmjobs submits through it instead of start()). The model-based test
(tests/benchd/test_scheduler_model.py) drives the scheduler with an in-memory executor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from benchd.procs import JobMarks
from benchd.schema import CancelOrder, ExitRecord, SupervisorInfo


@dataclass
class Handle:
    """What identifies a started job's processes; persisted in its JobRecord
    (supervisor_pid, supervisor_start_ticks, pgid) so that a restart can reattach."""
    job_id: str
    pid: int | None = None      # the supervisor (local) / unit / Slurm job
    ticks: int | None = None    # start ticks of pid: identity, not just a number
    pgid: int | None = None     # the orchestrator's process group, once it runs
    private: Any = None         # executor-only state (e.g. the Popen of our own child)


@dataclass
class Started:
    handle: Handle
    running: bool               # False: it could not start (outcome() / the log say why)


@dataclass(frozen=True)
class JobLimits:
    """What a job's processes are confined to (README "CPUs and memory"): the CPUs the
    scheduler gave it (benchd.cpusets) and the memory limit in bytes (None: none)."""
    cpus: tuple[int, ...] | None = None
    memory_max: int | None = None


class Executor(Protocol):
    async def start(self, marks: JobMarks, argv: list[str],
                    limits: JobLimits | None = None) -> Started:
        """Start the job (the orchestrator `argv`) within `limits` and return once it runs
        or has failed."""

    async def wait(self, handle: Handle) -> None:
        """Return once the job's processes are gone (its outcome is then final)."""

    def outcome(self, job_id: str) -> ExitRecord | None:
        """How the job ended, if it left an exit record."""

    def info(self, job_id: str) -> SupervisorInfo | None:
        """What the job's supervisor recorded about itself once the orchestrator ran."""

    def stop(self, handle: Handle, order: CancelOrder) -> None:
        """Ask the job to stop: SIGTERM now, SIGKILL after order.grace (carried out even if
        benchd dies meanwhile)."""

    def holds_lock(self, job_id: str) -> bool:
        """Is something (the job's supervisor) alive and holding the job's lock?"""

    def is_ours(self, marks: JobMarks, pid: int | None, ticks: int | None) -> bool:
        """Is `pid` (with `ticks`) alive, holding the job's lock and carrying its marks?"""

    def kill_leftovers(self, marks: JobMarks, pgid: int | None,
                       info: SupervisorInfo | None) -> list[str]:
        """SIGKILL whatever of the job is left; "pid (comm)" of each process killed."""

    def leftovers_note(self, killed: list[str]) -> str:
        """What a record's reason says about leftovers (what was killed, what cannot be)."""

    async def health_text(self) -> str:
        """What /api/health says of the executor ("local"; Slurm: slurmctld's state)."""

    def request_checkpoint(self, handle: Handle) -> None:
        """Ask the job to stop at its next experiment boundary and keep its staged run
        (pipeline.checkpoint): it then exits 75 and its exit record says `checkpointed`.
        Idempotent; the job's next start begins without the request."""
