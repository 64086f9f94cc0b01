"""The scheduling policy: which waiting jobs run next, in what order, and whether a running
job should be preempted. Pure functions over small snapshots, no I/O and no processes, so
that the policy is testable on its own (tests/benchd/test_scheduler_model.py) and the job
layer (benchd.jobs) only applies what it decides. README "Queue" states the rules:

  * higher priority first (-10..10);
  * within a priority, round-robin between users by a fair-queueing key given at submission
    (next_key): a user's next job gets one more than the later of their own last waiting
    job's key and the key of the last job started (the virtual clock), so one user's 50
    jobs cannot starve another user's one; ties go to the earlier submission. Keys are
    persisted, so the order shown is the order of starting and survives a restart;
  * a job whose dependencies are not yet met is skipped (others behind it may start);
  * a held (paused) job keeps its place in the order shown but is never picked.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchd import cpusets

PRIORITY_MIN, PRIORITY_MAX = -10, 10


@dataclass(frozen=True, slots=True)
class Waiting:
    """A job in the queue as the policy sees it."""
    job_id: str
    uid: int
    priority: int
    seq: int            # enqueue sequence: persisted, strictly increasing per root
    eligible: bool      # not held and its dependencies are met
    key: int = 0        # fair-queueing key (next_key); persisted
    cpus: int = 1       # CPUs it asks for (benchd.cpusets.allocate)
    exclusive: bool = False  # every managed CPU: only when nothing else runs


@dataclass(frozen=True)
class Running:
    """A job holding a slot as the policy sees it."""
    job_id: str
    priority: int
    seq: int
    cpus: tuple[int, ...] = ()   # the CPUs it is pinned to


def next_key(vclock: int, own_keys: Iterable[int]) -> int:
    """The fair-queueing key of a user's new job: after their own waiting jobs, and never
    before the last job started (`vclock`), so that a user who waited nothing is not
    served ahead of everyone already queued, nor behind one user's whole backlog."""
    return max(vclock, max(own_keys, default=0)) + 1


def order_key(priority: int, key: int, seq: int) -> tuple[int, int, int]:
    """The sort key of queue_order (the job layer keeps a sorted list by it)."""
    return (-priority, key, seq)


def queue_order(jobs: Iterable[Waiting]) -> list[Waiting]:
    """Every waiting job in the order it would start (held and blocked ones included)."""
    return sorted(jobs, key=lambda w: order_key(w.priority, w.key, w.seq))


def pick(waiting: Iterable[Waiting], free_slots: int) -> list[Waiting]:
    """The jobs to start now: the first `free_slots` eligible ones in queue order."""
    if free_slots <= 0:
        return []
    return [w for w in queue_order(waiting) if w.eligible][:free_slots]


def victim(running: Iterable[Running], waiting: Iterable[Waiting],
           free_slots: int, freeing: int = 0) -> Running | None:
    """The running job to preempt, if any: when no slot is free and the best eligible waiting
    job has a higher priority than the lowest-priority running one (the most recently
    started of those, which loses the least work). `freeing` slots are already being given
    back (jobs pausing or being preempted): they go to the first `freeing` eligible jobs, so
    only the next one may cause another preemption -- one preemption in flight per slot
    needed, never a storm. `running` holds only jobs that may be preempted (running, not
    already stopping)."""
    if free_slots > 0:
        return None
    best = pick(waiting, freeing + 1)
    runs = list(running)
    if len(best) <= freeing or not runs:
        return None
    low = min(runs, key=lambda r: (r.priority, -r.seq))
    return low if best[freeing].priority > low.priority else None


def place(waiting: Iterable[Waiting], free_slots: int, cores: list[cpusets.Core],
          busy: Iterable[int]) -> list[tuple[Waiting, tuple[int, ...]]]:
    """The jobs to start now with the CPUs each gets: eligible jobs in queue order while a
    slot is free and the job's CPUs fit beside the running jobs' (`busy`) and those placed
    before it. The first eligible job that does not fit stops the walk (no backfill): jobs
    behind it wait too, so a large or exclusive job at the head of the queue is not starved
    by a stream of small ones -- it starts as soon as enough CPUs are free."""
    out: list[tuple[Waiting, tuple[int, ...]]] = []
    taken = set(busy)
    for w in queue_order(waiting):
        if len(out) >= free_slots:
            break
        if not w.eligible:
            continue
        got = cpusets.allocate(cores, taken, w.cpus, w.exclusive)
        if got is None:
            break
        taken.update(got)
        out.append((w, got))
    return out


def cpu_victim(waiting: Iterable[Waiting], running: Iterable[Running], held: Iterable[int],
               cores: list[cpusets.Core], in_flight_for: Iterable[str]
               ) -> tuple[Running, Waiting] | None:
    """With a slot free but the first eligible job short of CPUs (a large or exclusive one):
    the running job to preempt for it, and that job. `running`: jobs that may be preempted;
    `held`: CPUs of the other jobs that keep theirs (starting, or not preemptible); the CPUs
    of jobs already being stopped count as free. Only a job of lower priority than the head, the
    lowest (most recently started) of them, and only if stopping every lower-priority job
    would make room -- never a preemption that cannot help. One at a time per head
    (`in_flight_for`): the next is asked when that one has stopped, if still needed, so no
    waiting job ever has two preemptions in flight."""
    head = next((w for w in queue_order(waiting) if w.eligible), None)
    if head is None or head.job_id in set(in_flight_for):
        return None
    runs = list(running)
    kept = set(held)
    busy = kept | {c for r in runs for c in r.cpus}
    if cpusets.allocate(cores, busy, head.cpus, head.exclusive) is not None:
        return None                          # it fits once the jobs being stopped are gone
    lower = [r for r in runs if r.priority < head.priority]
    staying = kept | {c for r in runs if r.priority >= head.priority for c in r.cpus}
    if not lower or cpusets.allocate(cores, staying, head.cpus, head.exclusive) is None:
        return None
    return min(lower, key=lambda r: (r.priority, -r.seq)), head
