"""Job states: the one place that says which states exist and which may follow which.

Stdlib only, so that benchctl can import it without paying for the daemon's imports.
"""
from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    STARTING = "starting"    # accepted; supervisor being spawned
    RUNNING = "running"      # orchestrator process running under its supervisor
    COMPLETED = "completed"  # orchestrator exited 0
    FAILED = "failed"        # exited non-zero / killed by a signal it was not asked to take
    CANCELLED = "cancelled"  # stopped because someone asked
    UNKNOWN = "unknown"      # supervisor vanished while benchd was down: outcome not knowable


ACTIVE: frozenset[JobState] = frozenset({JobState.STARTING, JobState.RUNNING})
FINAL: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.UNKNOWN}
)
CANCELLABLE: frozenset[JobState] = ACTIVE

# What may follow each state. Final states have no successor.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.STARTING: frozenset({JobState.RUNNING} | FINAL),
    JobState.RUNNING: FINAL,
    **{s: frozenset() for s in FINAL},
}


def can_transition(old: JobState, new: JobState) -> bool:
    """True when `new` may follow `old` (see TRANSITIONS)."""
    return new in TRANSITIONS[old]
