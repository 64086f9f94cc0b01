"""A model-based test of the scheduler: hypothesis drives the real JobManager + policy
(benchd.jobs, benchd.scheduler, real records on disk, real restarts on the same root) through
random submits (priorities, users, dependencies, CPUs), cancels, priority changes, holds, pauses
of running jobs (at the boundary or now), jobs reaching their experiment boundary, job exits
and benchd restarts (with stopping jobs checkpointing while it is down), and checks the
invariants after every step: slots, no idle slot, priority and FIFO/round-robin order,
preemption (an outranked running job is being stopped, one preemption per waiting job, also
when a slot is free but the first waiting job is short of CPUs that lower ones hold),
one final state each, no job started twice (once per segment it was kept for), and the CPU
sets of running jobs disjoint (random CPU requests and exclusive jobs).

The executor is a fake (FakeExecutor below), and this is the one place a fake is right: the
property is about which job the scheduler starts when, over thousands of steps, which real
processes cannot deliver in a test's time; what the fake stands in for (the local executor)
is tested against real supervisors and process groups in test_jobs*.py and tests/e2e/.
"""
from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 rule)

from benchd import cpusets, procs, scheduler
from benchd.errors import BenchdError
from benchd.executors import Handle, JobLimits, Started
from benchd.jobs import JobManager
from benchd.schema import CancelOrder, ExitRecord, JobConfig
from benchd.states import ACTIVE, ELIGIBLE, FINAL, STOPPING, WAITING, JobState, StopMode
from benchd.store import utc_now

CFG = JobConfig(experiments=["gmst_era"], ci=True)
USERS = (1, 2, 3)
# an SMT machine: two 2-thread cores and a 1-thread one (CPU numbers as Linux gives them,
# siblings apart: 0/2 and 1/3); a job must never hold one thread of a core another job holds
CORES = [(0, 2), (1, 3), (4,)]


class FakeExecutor:
    """In memory: start succeeds at once, a job runs until the test says it exits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids = itertools.count(1000)
        self.alive: dict[str, Handle] = {}
        self.exits: dict[str, ExitRecord] = {}
        self.gone: dict[str, asyncio.Event] = {}
        self.starts: Counter[str] = Counter()
        self.checkpoint_asked: set[str] = set()   # running jobs asked to stop at a boundary

        self.cpus: dict[str, tuple[int, ...]] = {}   # job id -> CPUs it was started on
        self.on_start = lambda job_id: None

    async def start(self, marks: procs.JobMarks, argv: list[str],
                    limits: JobLimits | None = None) -> Started:
        assert limits is not None and limits.cpus, "a job started without its CPUs"
        self.cpus[marks.job_id] = limits.cpus
        self.on_start(marks.job_id)
        self.starts[marks.job_id] += 1
        (self.root / "logs" / f"{marks.job_id}.log").touch()
        self.checkpoint_asked.discard(marks.job_id)   # a new segment: nothing of the last
        self.exits.pop(marks.job_id, None)
        self.gone[marks.job_id] = asyncio.Event()
        pid = next(self.pids)
        h = Handle(marks.job_id, pid, 1, pid)
        self.alive[marks.job_id] = h
        return Started(h, True)

    async def wait(self, handle: Handle) -> None:
        await self.gone.setdefault(handle.job_id, asyncio.Event()).wait()

    def exit(self, job_id: str, code: int, cancelled: bool = False,
             stopped_for=None) -> None:
        self.alive.pop(job_id, None)
        self.checkpoint_asked.discard(job_id)
        self.exits[job_id] = ExitRecord(job_id=job_id, exit_code=code, signal=None,
                                        cancelled=cancelled, finished_at=utc_now(),
                                        reason="cancelled" if cancelled else None,
                                        checkpointed=code == 75, stopped_for=stopped_for)
        self.gone.setdefault(job_id, asyncio.Event()).set()

    def outcome(self, job_id: str) -> ExitRecord | None:
        return self.exits.get(job_id)

    def info(self, job_id: str):
        return None

    def stop(self, handle: Handle, order: CancelOrder) -> None:
        if handle.job_id in self.alive:
            self.exit(handle.job_id, -15, cancelled=True, stopped_for=order.purpose)

    def request_checkpoint(self, handle: Handle) -> None:
        if handle.job_id in self.alive:
            self.checkpoint_asked.add(handle.job_id)

    def holds_lock(self, job_id: str) -> bool:
        return job_id in self.alive

    def is_ours(self, marks: procs.JobMarks, pid: int | None, ticks: int | None) -> bool:
        h = self.alive.get(marks.job_id)
        return h is not None and h.pid == pid

    def kill_leftovers(self, marks, pgid, info) -> list[str]:
        return []

    def leftovers_note(self, killed: list[str]) -> str:
        return "no leftover process"


def _order_key(r) -> tuple:
    return (-r.priority, r.queue_key or r.queue_seq or 0, r.queue_seq or 0)


class SchedulerModel(RuleBasedStateMachine):
    slots = 3

    def __init__(self) -> None:
        super().__init__()
        base = "/dev/shm" if Path("/dev/shm").is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="sched-model-", dir=base))
        self.loop = asyncio.new_event_loop()
        self.ex = FakeExecutor(self.root)
        self.ex.on_start = self._check_pick
        self.m: JobManager | None = None
        self.final_seen: dict[str, JobState] = {}
        self.violations: list[str] = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        """Let the manager act on what just happened: loop turns, then a bounded poll until no
        job is still `starting` (record writes and log reads hop through worker threads, so a
        fixed number of turns could leave a start half done, and hypothesis would see the
        same example behave differently when it replays it)."""
        async def turns() -> None:
            for _ in range(50):
                await asyncio.sleep(0)
            deadline = self.loop.time() + 10.0
            while any(r.status == JobState.STARTING for r in self.m.list_jobs()) \
                    and self.loop.time() < deadline:
                await asyncio.sleep(0.001)
            for _ in range(50):
                await asyncio.sleep(0)
        self.run(turns())

    @initialize()
    def boot(self) -> None:
        self.m = JobManager(self.root, orchestrator=["true"], executor=self.ex, slots=self.slots,
                            max_queued_per_user=1000, cores=CORES)
        self.run(self.m.reconcile())

    def teardown(self) -> None:
        try:
            if self.m is not None:
                self.run(self.m.close())
            pending = asyncio.all_tasks(self.loop)   # log tailers of jobs left running
            for t in pending:
                t.cancel()

            async def drain() -> None:
                await asyncio.gather(*pending, return_exceptions=True)
            self.run(drain())
            self.loop.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # what the scheduler may start, seen from the executor at the moment it is asked --------
    def _check_pick(self, job_id: str) -> None:
        m = self.m
        started = m.get(job_id)
        if job_id in self.ex.alive:
            self.violations.append(f"job {job_id} started while it runs")
        if self.ex.starts[job_id] > started.checkpoints:
            self.violations.append(f"job {job_id} started again without being kept")
        eligible = [m.get(j) for j in m._waiting
                    if m.get(j).status in ELIGIBLE and m._deps_met(m.get(j))]
        for w in eligible:
            if w.priority > started.priority:
                self.violations.append(f"{job_id} (prio {started.priority}) started before "
                                       f"{w.job_id} (prio {w.priority})")
            if _order_key(w) < _order_key(started):
                self.violations.append(f"{job_id} started ahead of {w.job_id} in queue order")
            if w.requester_uid == started.requester_uid and w.priority == started.priority \
                    and (w.queue_seq or 0) < (started.queue_seq or 0):
                self.violations.append(f"{job_id} overtook its user's earlier {w.job_id}")

    def _in_order(self, ids) -> list[str]:
        """`ids` in submission order: job ids are random, so picking by sorted id would make
        a replayed example act on other jobs (hypothesis then calls the test flaky)."""
        return [j for j in self.m._order if j in ids]

    # rules ---------------------------------------------------------------------------------
    @rule(uid=st.sampled_from(USERS), priority=st.integers(-3, 3),
          dep=st.sampled_from([None, "after", "after_any"]), pick=st.integers(0, 10**6),
          cpus=st.sampled_from([1, 1, 2, 3]), exclusive=st.sampled_from([False] * 5 + [True]))
    def submit(self, uid: int, priority: int, dep: str | None, pick: int, cpus: int,
               exclusive: bool) -> None:
        cfg = msgspec.structs.replace(CFG, priority=priority, cpus=cpus, exclusive=exclusive)
        ids = [r.job_id for r in self.m.list_jobs()]
        if dep and ids:
            cfg = msgspec.structs.replace(cfg, **{dep: [ids[pick % len(ids)]]})
        who = 0 if priority > 0 else uid   # only root may go above 0
        rec = self.run(self.m.start(cfg, who, f"u{who}"))
        assert rec.status in (ACTIVE | WAITING | {JobState.FAILED}), rec.status
        self.settle()

    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick: int) -> None:
        jobs = self.m.list_jobs()
        if not jobs:
            return
        rec = jobs[pick % len(jobs)]
        try:
            self.run(self.m.cancel(rec.job_id, 0))
        except BenchdError:
            assert self.m.get(rec.job_id).status in FINAL
        self.settle()

    @rule(pick=st.integers(0, 10**6), priority=st.integers(-5, 5))
    def reprioritise(self, pick: int, priority: int) -> None:
        waiting = self._in_order(self.m._waiting)
        if not waiting:
            return
        self.run(self.m.set_priority(waiting[pick % len(waiting)], 0, priority))
        self.settle()

    @rule(pick=st.integers(0, 10**6), hold=st.booleans())
    def pause_or_resume(self, pick: int, hold: bool) -> None:
        waiting = self._in_order(self.m._waiting)
        if not waiting:
            return
        job_id = waiting[pick % len(waiting)]
        try:
            self.run(self.m.pause(job_id, 0) if hold else self.m.resume(job_id, 0))
        except BenchdError:
            assert not hold and self.m.get(job_id).status != JobState.PAUSED
        self.settle()

    @rule(pick=st.integers(0, 10**6), now=st.booleans())
    def pause_running(self, pick: int, now: bool) -> None:
        """Pause a running job: at its next boundary, or now (SIGTERM at once)."""
        active = self._in_order(self.ex.alive)
        if not active:
            return
        job_id = active[pick % len(active)]
        rec = self.run(self.m.pause(job_id, 0, now=now))
        assert rec.status in (STOPPING | {JobState.PAUSED} | FINAL), rec.status
        if rec.status == JobState.PAUSING:
            assert now or job_id in self.ex.checkpoint_asked
        self.settle()

    @rule(pick=st.integers(0, 10**6))
    def reach_boundary(self, pick: int) -> None:
        """A job asked to checkpoint reaches its experiment boundary: it exits 75."""
        asked = self._in_order(self.ex.checkpoint_asked)
        if not asked:
            return
        self.ex.exit(asked[pick % len(asked)], 75)
        self.settle()

    @rule(pick=st.integers(0, 10**6), code=st.sampled_from([0, 0, 1]))
    def job_exits(self, pick: int, code: int) -> None:
        """A running job ends (nothing when none runs: a rule, not a precondition, so that
        which rules may run never depends on timing)."""
        running = self._in_order(self.ex.alive)
        if not running:
            return
        self.ex.exit(running[pick % len(running)], code)
        self.settle()

    @rule(boundary_while_down=st.booleans())
    def restart(self, boundary_while_down: bool) -> None:
        """benchd stops and starts again on the same root (the jobs keep running; with
        `boundary_while_down`, those asked to checkpoint exit 75 while it is down)."""
        before = self.m.queue_positions()
        self.run(self.m.close())
        if boundary_while_down:
            for job_id in self._in_order(self.ex.checkpoint_asked):
                self.ex.exit(job_id, 75)
        self.m = JobManager(self.root, orchestrator=["true"], executor=self.ex,
                            slots=self.slots, max_queued_per_user=1000, cores=CORES)
        self.run(self.m.reconcile())
        self.settle()
        after = self.m.queue_positions()
        common = [j for j in sorted(before, key=before.get) if j in after]
        assert common == sorted(common, key=after.get), "queue order changed by a restart"

    # invariants ----------------------------------------------------------------------------
    @invariant()
    def no_violation_seen(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def never_more_running_than_slots(self) -> None:
        if self.m is None:
            return
        active = [r for r in self.m.list_jobs() if r.status in ACTIVE]
        assert len(active) <= self.slots, active
        assert len(self.ex.alive) <= self.slots

    @invariant()
    def no_idle_slot_while_an_eligible_job_fits(self) -> None:
        """A free slot stays free only while the first eligible job in queue order does not
        fit on the free CPUs (no backfill: it waits for them, and so do the jobs behind it)."""
        if self.m is None:
            return
        active = [r for r in self.m.list_jobs() if r.status in ACTIVE]
        if len(active) < self.slots:
            eligible = [w for w in scheduler.queue_order(self.m._snapshot()) if w.eligible]
            busy = [c for r in active for c in (r.cpuset or ())]
            assert not eligible or cpusets.allocate(CORES, busy, eligible[0].cpus,
                                                    eligible[0].exclusive) is None, \
                (active, eligible[0])

    @invariant()
    def cpu_sets_of_running_jobs_are_disjoint(self) -> None:
        """Disjoint, whole cores (no SMT sibling split between two jobs), the size asked for,
        an exclusive job alone on every CPU, and the record says what the executor got."""
        if self.m is None:
            return
        held: dict[tuple[int, ...], str] = {}
        for job_id in self.ex.alive:
            cpus = self.ex.cpus[job_id]
            rec = self.m.get(job_id)
            assert rec.cpuset == list(cpus), (job_id, rec.cpuset, cpus)
            if rec.config.exclusive:
                assert sorted(cpus) == [0, 1, 2, 3, 4] and len(self.ex.alive) == 1, \
                    (job_id, cpus, list(self.ex.alive))
            else:
                assert len(cpus) == rec.config.cpus, (job_id, cpus, rec.config.cpus)
            for core in CORES:  # computed here, not by cpusets.reserved (under test)
                if set(core) & set(cpus):
                    assert core not in held, f"core {core} of {job_id} is also {held[core]}'s"
                    held[core] = job_id

    @invariant()
    def final_is_final_and_started_once(self) -> None:
        if self.m is None:
            return
        for r in self.m.list_jobs():
            if r.job_id in self.final_seen:
                assert r.status == self.final_seen[r.job_id], (r.job_id, r.status)
            elif r.status in FINAL:
                self.final_seen[r.job_id] = r.status
            assert self.ex.starts[r.job_id] <= 1 + r.checkpoints, r.job_id
            if r.status == JobState.FAILED and r.reason and "dependency" in r.reason:
                assert self.ex.starts[r.job_id] == 0

    @invariant()
    def an_outranked_running_job_is_being_preempted(self) -> None:
        """No slot free and k eligible jobs outrank the lowest running job: at least k slots
        are being given back (preemption), and no waiting job caused two preemptions."""
        if self.m is None:
            return
        jobs = self.m.list_jobs()
        active = [r for r in jobs if r.status in ACTIVE]
        if len(active) < self.slots or any(r.status == JobState.STARTING for r in active):
            return
        running = [r.priority for r in active if r.status == JobState.RUNNING]
        stopping = [r for r in active if r.status in STOPPING]
        if running:
            outranking = [j for j in self.m._waiting if self.m.get(j).status in ELIGIBLE
                          and self.m._deps_met(self.m.get(j))
                          and self.m.get(j).priority > min(running)]
            assert len(outranking) <= len(stopping), (outranking, stopping)
        by = [r.preempted_by for r in stopping if r.status == JobState.PREEMPTING]
        assert len(by) == len(set(by)), f"preemption storm: {by}"

    @invariant()
    def a_job_short_of_cpus_preempts_lower_ones_that_hold_them(self) -> None:
        """A slot free, the first eligible job does not fit on the free CPUs, and stopping the
        lower-priority running jobs would make room: one of them is being stopped."""
        if self.m is None:
            return
        active = [r for r in self.m.list_jobs() if r.status in ACTIVE]
        if len(active) >= self.slots or any(r.status == JobState.STARTING for r in active):
            return
        eligible = [w for w in scheduler.queue_order(self.m._snapshot()) if w.eligible]
        if not eligible or any(r.status in STOPPING for r in active):
            return
        head = eligible[0]
        busy = [c for r in active for c in (r.cpuset or ())]
        staying = [c for r in active if r.priority >= head.priority for c in (r.cpuset or ())]
        lower = [r.job_id for r in active if r.priority < head.priority]
        assert not (cpusets.allocate(CORES, busy, head.cpus, head.exclusive) is None and lower
                    and cpusets.allocate(CORES, staying, head.cpus, head.exclusive)
                    is not None), f"{head} waits for CPUs that lower-priority {lower} hold"

    @invariant()
    def a_stopping_job_was_asked(self) -> None:
        """Every pausing/preempting job was asked (its intent persisted first, then the ask):
        a checkpoint request, or a stop order it obeyed."""
        if self.m is None:
            return
        for r in self.m.list_jobs():
            if r.status in STOPPING and r.job_id in self.ex.alive:
                assert r.stop_mode == StopMode.BOUNDARY and \
                    r.job_id in self.ex.checkpoint_asked, r

    @invariant()
    def positions_are_one_to_n_in_policy_order(self) -> None:
        if self.m is None:
            return
        pos = self.m.queue_positions()
        assert sorted(pos.values()) == list(range(1, len(pos) + 1))
        ordered = sorted(pos, key=pos.get)
        assert ordered == sorted(ordered, key=lambda j: _order_key(self.m.get(j)))
        assert [w.job_id for w in scheduler.queue_order(self.m._snapshot())] == ordered


SchedulerModel.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_scheduler_model = SchedulerModel.TestCase
