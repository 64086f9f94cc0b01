"""Job states: the one place that says which states exist and which may follow which.

Stdlib only, so that benchctl can import it without paying for the daemon's imports.
"""
from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    QUEUED = "queued"        # accepted, waiting for a slot (and its dependencies)
    STARTING = "starting"    # chosen to run; supervisor being spawned (the spawn intent)
    RUNNING = "running"      # orchestrator process running under its supervisor
    PAUSED = "paused"        # held: stopped by request (or held while queued); not eligible
    PREEMPTED = "preempted"  # stopped to make room for a higher priority; eligible again
    COMPLETED = "completed"  # orchestrator exited 0
    FAILED = "failed"        # exited non-zero / killed by a signal it was not asked to take
    CANCELLED = "cancelled"  # stopped because someone asked
    UNKNOWN = "unknown"      # supervisor vanished while benchd was down: outcome not knowable
    PAUSING = "pausing"      # running; asked to stop (next boundary, or SIGTERM) and be kept
    PREEMPTING = "preempting"  # running; asked to stop for a higher priority and be kept


class StopMode(enum.StrEnum):
    """How a running job is stopped when it is paused or preempted (its staged run kept)."""
    BOUNDARY = "boundary"    # at its next experiment boundary: nothing measured is redone
    NOW = "now"              # SIGTERM at once: the interrupted experiment is redone


class StopFor(enum.StrEnum):
    """Why a stop order keeps the job (CancelOrder.purpose, ExitRecord.stopped_for); a stop
    order without one is a cancel."""
    PAUSE = "pause"
    PREEMPT = "preempt"


def stopped_as(purpose: str | None) -> str:
    """How a job stopped by an order is described ("paused by alice: ..."): by the order's
    purpose (StopFor), and "cancelled" for a plain cancel."""
    return {StopFor.PAUSE: "paused", StopFor.PREEMPT: "preempted"}.get(purpose, "cancelled")


# holding a slot: a process exists or is being spawned
ACTIVE: frozenset[JobState] = frozenset({JobState.STARTING, JobState.RUNNING,
                                         JobState.PAUSING, JobState.PREEMPTING})
# holding a slot that is being given back (a pause or preemption in flight)
STOPPING: frozenset[JobState] = frozenset({JobState.PAUSING, JobState.PREEMPTING})
# no process: in the queue, eligible (queued, preempted) or held (paused)
WAITING: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.PAUSED, JobState.PREEMPTED})
# the scheduler may pick these when a slot is free (and their dependencies allow)
ELIGIBLE: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.PREEMPTED})
FINAL: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN}
)
CANCELLABLE: frozenset[JobState] = ACTIVE | WAITING


class Transition(enum.Enum):
    """The named transitions (old, new) that are not "it ended" (X -> a final state)."""
    DISPATCH = (JobState.QUEUED, JobState.STARTING)        # scheduler picked it for a slot
    REDISPATCH = (JobState.PREEMPTED, JobState.STARTING)   # a preempted job resumes
    STARTED = (JobState.STARTING, JobState.RUNNING)        # its supervisor reported running
    PREEMPT = (JobState.RUNNING, JobState.PREEMPTING)      # asked to stop for a higher priority
    PREEMPTED = (JobState.PREEMPTING, JobState.PREEMPTED)  # ... stopped, staged run kept
    PAUSE = (JobState.RUNNING, JobState.PAUSING)           # asked to stop on request
    PAUSE_PREEMPTING = (JobState.PREEMPTING, JobState.PAUSING)  # paused while being preempted
    PAUSED = (JobState.PAUSING, JobState.PAUSED)           # ... stopped, staged run kept
    HOLD = (JobState.QUEUED, JobState.PAUSED)              # held in the queue (scontrol hold)
    HOLD_PREEMPTED = (JobState.PREEMPTED, JobState.PAUSED)
    RESUME = (JobState.PAUSED, JobState.QUEUED)            # back in the queue
    REQUEUE = (JobState.PREEMPTED, JobState.QUEUED)        # back in the queue as plain queued


# What may follow each state. Final states have no successor. Waiting states end cancelled
# (no process: at once) or failed (a dependency failed; its reason names it).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.PAUSED,
                                JobState.CANCELLED, JobState.FAILED}),
    JobState.STARTING: frozenset({JobState.RUNNING} | FINAL),
    JobState.RUNNING: frozenset({JobState.PAUSING, JobState.PREEMPTING} | FINAL),
    # a stopping job still runs: it may also end (completed before the boundary, cancelled,
    # failed, unknown)
    JobState.PAUSING: frozenset({JobState.PAUSED} | FINAL),
    JobState.PREEMPTING: frozenset({JobState.PREEMPTED, JobState.PAUSING} | FINAL),
    JobState.PAUSED: frozenset({JobState.QUEUED, JobState.CANCELLED, JobState.FAILED}),
    JobState.PREEMPTED: frozenset({JobState.STARTING, JobState.QUEUED, JobState.PAUSED,
                                   JobState.CANCELLED, JobState.FAILED}),
    **{s: frozenset() for s in FINAL},
}
assert all(new in TRANSITIONS[t.value[0]] for t in Transition
           for new in (t.value[1],)), "a named transition is missing from TRANSITIONS"


def can_transition(old: JobState, new: JobState) -> bool:
    """True when `new` may follow `old` (see TRANSITIONS)."""
    return new in TRANSITIONS[old]


# Slurm's job states (squeue %T, sacct State) -> the benchd state a job in it has under
# `--executor slurm` (benchd.executors.slurm). Slurm is the queue there: PENDING is queued
# (Slurm's reason shown beside it), every state in which the batch script runs or winds down
# is running, and each way of ending maps to a final state; the Slurm state itself is kept
# in the record (`slurm_state`) and in the reason, exactly as Slurm reports it.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.QUEUED, "REQUEUED": JobState.QUEUED, "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED, "RESV_DEL_HOLD": JobState.QUEUED,
    "RUNNING": JobState.RUNNING, "CONFIGURING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING, "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING, "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING, "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "FAILED": JobState.FAILED, "TIMEOUT": JobState.FAILED, "OUT_OF_MEMORY": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED, "BOOT_FAIL": JobState.FAILED, "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED, "SPECIAL_EXIT": JobState.FAILED, "REVOKED": JobState.FAILED,
}


def slurm_state(name: str) -> JobState | None:
    """The benchd state of a Slurm state name ("CANCELLED by 0" counts as CANCELLED); None
    for a name this table does not know (benchd then keeps the job's state and logs it)."""
    return SLURM_STATES.get(name.split(" ", 1)[0].strip().upper().rstrip("+"))
