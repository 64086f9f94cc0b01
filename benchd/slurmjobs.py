"""The job layer with Slurm as the queue (`benchd --executor slurm`).

SlurmJobManager is JobManager (records, API methods, followers, reconcile) with the slot
scheduler switched off: every job whose dependencies are met is submitted with sbatch at
once (benchd.executors.slurm), and its state follows what Slurm reports: PENDING is queued
(with Slurm's reason in `slurm_state`), RUNNING is running, and each way of ending maps to a
final state with Slurm's state, exit code and signal kept (benchd.states.SLURM_STATES).

No job is submitted twice: the submission intent (spawn_attempts + 1, still queued) is on
disk before sbatch runs, and a job with an intent but no recorded Slurm id is looked up by
its name and comment before it is submitted again (after a crash, or after sbatch failed
because slurmctld did not answer).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from benchd import procs
from benchd.errors import CancelFailed
from benchd.executors import Handle
from benchd.executors.slurm import SlurmError, SlurmExecutor, SlurmStatus
from benchd.jobs import JobManager, _Live
from benchd.sizes import parse_size
from benchd.schema import ExitRecord, JobConfig, JobRecord, check_label
from benchd.states import ACTIVE, FINAL, STOPPING, WAITING, JobState, StopMode
from benchd.store import utc_now

log = logging.getLogger(__name__)

SLURM_MAX_CPUS = 4096  # a sanity bound on one job's --cpus-per-task
SBATCH_WAIT_S = 30.0    # reconcile waits this long for an sbatch a crash left under way
SLURM_CANCEL_MARGIN_S = 60.0  # after the grace and benchd's margin: Slurm's COMPLETING phase


class SlurmJobManager(JobManager):
    """Every job of one root as Slurm batch jobs (see the module docstring)."""

    executor: SlurmExecutor

    def __init__(self, root: Path, *, executor: SlurmExecutor, **kw: object) -> None:
        super().__init__(root, executor=executor, **kw)  # type: ignore[arg-type]
        self.slots = 0                     # the local slot scheduler never starts anything
        self._submitting: set[str] = set()
        self._reconcile_polled = False           # reconcile: the one poll done
        self._reconcile_error: str | None = None  # ...and why it failed, if it did
        executor.on_status = self._on_slurm
        executor.on_lost = self._on_lost
        executor.on_available = self._dispatch

    # submission ----------------------------------------------------------------------------
    async def start(self, config: JobConfig, uid: int, user: str, *,
                    before_start: Callable[[JobRecord], None] | None = None) -> JobRecord:
        """As JobManager.start, refused with 503 executor_unavailable while slurmctld does
        not answer; returns the record once sbatch has accepted it (queued, with its Slurm
        id) or refused it (failed, with sbatch's message)."""
        check_label(config.label)
        self._argv_tail(config)            # a bad request is a 400 even while Slurm is away
        await self.executor.require()
        rec = await super().start(config, uid, user, before_start=before_start)
        if rec.status == JobState.QUEUED:   # shielded: a client gone mid-sbatch loses no id
            await asyncio.shield(self._spawn_task(self._submit(rec.job_id)))
        return self.shown(self._jobs[rec.job_id])

    def _cpu_capacity(self) -> tuple[int, str]:
        """Slurm checks a request against its nodes (sbatch refuses what no node has)."""
        return SLURM_MAX_CPUS, "Slurm refuses a request no node can meet"

    def _request(self, rec: JobRecord) -> dict[str, object]:
        """The job's CPU request, memory limit (its own, else --job-memory-max) and priority,
        for sbatch_args: the same fields the local executor honours."""
        cfg = rec.config
        return dict(cpus=cfg.cpus, exclusive=cfg.exclusive,
                    memory_max_bytes=(parse_size(cfg.memory_max) if cfg.memory_max is not None
                                      else self.job_memory_max),
                    priority=rec.priority)

    def _preempt(self) -> None:
        """Slurm orders its own queue (priorities as --nice): benchd preempts nothing."""

    def _starts_now(self, rec: JobRecord) -> bool:
        return False                       # Slurm decides when: every job is queued first

    def _refuse_busy(self) -> None:
        """`queue: false` cannot be honoured: Slurm is the queue (README)."""

    def _dispatch(self) -> None:
        super()._dispatch()                # dependency failures (slots = 0: nothing starts)
        if self._settling:
            return
        for job_id in sorted(self._waiting):
            rec = self._jobs[job_id]
            if rec.status == JobState.QUEUED and rec.slurm_job_id is None \
                    and job_id not in self._submitting and self._deps_met(rec):
                self._spawn_task(self._submit(job_id))

    async def _submit(self, job_id: str) -> None:
        if job_id in self._submitting:
            return
        self._submitting.add(job_id)
        try:
            await self._submit_once(job_id)
        finally:
            self._submitting.discard(job_id)

    async def _submit_once(self, job_id: str) -> None:
        rec = self._jobs[job_id]
        if rec.status != JobState.QUEUED or rec.slurm_job_id is not None \
                or not self._deps_met(rec):
            return
        marks = procs.JobMarks(job_id, rec.job_token, self.root_id)
        try:
            if rec.spawn_attempts > 0:     # an earlier sbatch may have reached Slurm
                await self.executor.wait_for_sbatch(marks, SBATCH_WAIT_S)
                st = (await self.executor.find([job_id])).get(job_id)
                if st is not None and st.slurm_id not in (rec.slurm_past_ids or ()):
                    self._adopt(job_id, st)
                    return
            tail = self._queued_argv(rec)
            if tail is None:
                return                     # failed: its config no longer validates
            rec = self._update(self._jobs[job_id], spawn_attempts=rec.spawn_attempts + 1)
            argv = [*self.orchestrator, *tail, "--results-dir", str(self.root / "results")]
            sid = await self.executor.submit(marks, argv, **self._request(rec))
        except SlurmError as e:
            if e.unreachable:              # submitted when slurmctld answers again
                log.warning("job %s: not submitted (%s); retried when slurmctld answers",
                            job_id, e)
                self.executor.reachable = False
                return
            rec = self._jobs[job_id]
            if rec.status not in FINAL:
                self._update(rec, status=JobState.FAILED, finished_at=utc_now(),
                             reason=f"sbatch refused the job: {e}")
                self._dispatch()
            return
        rec = self._jobs[job_id]
        self._update(rec, slurm_job_id=sid, slurm_state="PENDING")
        if rec.status in FINAL:            # cancelled while sbatch ran
            await self.executor.scancel_now(sid)
            return
        if rec.status == JobState.PAUSED:  # paused while sbatch ran
            await self._control("hold", sid)
        self.executor.track(sid, job_id)

    def _adopt(self, job_id: str, st: SlurmStatus) -> None:
        """A Slurm job found by name: record its id, watch it, apply what it says."""
        rec = self._update(self._jobs[job_id], slurm_job_id=st.slurm_id,
                           slurm_state=st.text())
        log.info("job %s: found its Slurm job %s by name (%s); not submitted again",
                 job_id, st.slurm_id, st.text())
        self.executor.track(st.slurm_id, job_id)
        if rec.status not in FINAL:
            self.executor.kick()

    # what Slurm says -----------------------------------------------------------------------
    def _on_slurm(self, job_id: str, st: SlurmStatus) -> None:
        """Apply one change the watcher saw."""
        rec = self._jobs.get(job_id)
        if rec is None or rec.status in FINAL:
            return
        new_state = st.benchd_state
        if new_state is None:
            log.warning("job %s: Slurm state %r is not known to benchd; keeping %s", job_id,
                        st.state, rec.status.value)
            return
        if new_state == JobState.QUEUED:
            if rec.slurm_state != st.text():
                self._stage(msgspec.structs.replace(rec, slurm_state=st.text()))
            return
        live = self._live.get(job_id)
        if live is None:                   # it runs (or already ended): follow it
            self._attach(rec, st)
        elif rec.slurm_state != st.text() and not st.final:
            self._stage(msgspec.structs.replace(rec, slurm_state=st.text()))

    def _attach(self, rec: JobRecord, st: SlurmStatus | None) -> None:
        """Make `rec` running (from whatever state it waited in) and follow it to its end."""
        job_id = rec.job_id
        text = st.text() if st is not None and not st.final else "RUNNING"
        if rec.status == JobState.PAUSED:  # released outside benchd, or started as held
            rec = self._update(rec, status=JobState.QUEUED)
        if rec.status in (JobState.QUEUED, JobState.PREEMPTED):
            rec = self._update(rec, status=JobState.STARTING)
        if rec.status == JobState.STARTING:
            rec = self._update(rec, status=JobState.RUNNING, slurm_state=text,
                               started_at=(st.start if st is not None and st.start
                                           else utc_now()))
        live = _Live(job_id, self.store.paths(job_id),
                     procs.JobMarks(job_id, rec.job_token, self.root_id))
        live.handle = Handle(job_id, private=rec.slurm_job_id)
        live.started.set_result(None)
        self._live[job_id] = live
        live.task = self._spawn_task(self._run(live))

    def _on_lost(self, job_id: str, why: str) -> None:
        rec = self._jobs.get(job_id)
        if rec is None or rec.status in FINAL:
            return
        live = self._live.get(job_id)
        if live is not None and live.task is not None:
            live.task.cancel()             # its follower waits for an end nobody will see
        self._finish(live, JobState.UNKNOWN, reason=why, job_id=job_id)

    def _outcome(self, rec: JobRecord, ex: ExitRecord) -> tuple[JobState, str | None]:
        """Slurm's state decides (a TIMEOUT's batch step may well exit 0:15), except for a
        pausing job that stopped as asked: paused, its staged run kept (as locally)."""
        if rec.status in STOPPING:
            state, reason = super()._outcome(rec, ex)
            if state in WAITING:
                return state, reason
        st = self.executor.slurm_outcome(rec.job_id)
        if ex.cancelled:
            return JobState.CANCELLED, ex.reason
        if st is not None and st.benchd_state == JobState.COMPLETED and not ex.exit_code:
            return JobState.COMPLETED, None
        reason = ex.reason or "failed"
        from benchd.jobs import _last_error_line
        last = _last_error_line(self.store.paths(rec.job_id).log)
        return JobState.FAILED, f"{reason}: {last}" if last else reason

    def _finish(self, live: _Live | None, status: JobState, reason: str | None, *,
                exit: ExitRecord | None = None, job_id: str | None = None) -> JobRecord:
        jid = live.job_id if live else job_id
        assert jid is not None
        got = self.executor.slurm_outcome(jid)
        rec = self._jobs[jid]
        if got is not None and rec.slurm_state != got.text():
            rec = self._jobs[jid] = msgspec.structs.replace(rec, slurm_state=got.text())
        if status in WAITING and rec.slurm_job_id is not None:
            # paused: its next segment (resume) is a new batch job; this one is history,
            # never to be adopted by name again (_submit_once)
            self._jobs[jid] = msgspec.structs.replace(
                rec, slurm_job_id=None,
                slurm_past_ids=[*(rec.slurm_past_ids or ()), rec.slurm_job_id])
        new = super()._finish(live, status, reason, exit=exit, job_id=job_id)
        self.executor.forget(jid)
        return new

    # pause, resume, priority, cancel -------------------------------------------------------
    async def pause(self, job_id: str, uid: int, now: bool = False) -> JobRecord:
        """A queued job is held in Slurm too (`scontrol hold`). A running one checkpoints
        as locally (the request file on the shared root, or `now`: scancel --signal=TERM)
        and its batch job ends; resume submits a new batch job that resumes its staged run
        (Slurm's own requeue would rerun the script from the start)."""
        new = await super().pause(job_id, uid, now)
        if new.slurm_job_id and new.status == JobState.PAUSED:
            await self._control("hold", new.slurm_job_id)
        return self.shown(self._jobs[job_id])

    async def resume(self, job_id: str, uid: int) -> JobRecord:
        await super().resume(job_id, uid)
        sid = self._jobs[job_id].slurm_job_id
        if sid:
            await self._control("release", sid)
        return self.shown(self._jobs[job_id])

    async def set_priority(self, job_id: str, uid: int, priority: object) -> JobRecord:
        new = await super().set_priority(job_id, uid, priority)
        rec = self._jobs[job_id]
        if rec.slurm_job_id and rec.status in WAITING:
            from benchd.executors.slurm import nice_for
            await self._control("update", f"JobId={rec.slurm_job_id}",
                                f"Nice={nice_for(rec.priority)}")
        return new

    async def _control(self, *args: str) -> None:
        try:
            await self.executor.control(*args)
        except SlurmError as e:
            log.warning("scontrol %s: %s", " ".join(args), e)

    async def cancel(self, job_id: str, uid: int, grace: float | None = None) -> JobRecord:
        """A job still pending in Slurm is scancel'ed at once; a running one gets
        scancel --signal=TERM, then a full scancel after the grace (executor.stop)."""
        rec = self.get(job_id)
        pending = rec.slurm_job_id if rec.status in WAITING else None
        try:
            new = await super().cancel(job_id, uid, grace)  # checks; records it if waiting
        except CancelFailed:
            # killed, but Slurm keeps a job COMPLETING until slurmd has cleaned up (KillWait,
            # epilog): that is not a failure to stop it, so wait for Slurm's word a while more
            live = self._live.get(job_id)
            if live is None:
                return self._jobs[job_id]
            try:
                await asyncio.wait_for(asyncio.shield(live.done), SLURM_CANCEL_MARGIN_S)
            except asyncio.TimeoutError:
                raise CancelFailed(f"job {job_id}: Slurm job {rec.slurm_job_id} has not ended "
                                   f"{SLURM_CANCEL_MARGIN_S:g} s after its full scancel (it "
                                   f"is {self._jobs[job_id].slurm_state})") from None
            return self._jobs[job_id]
        if pending:
            await self.executor.scancel_now(pending)
        return new

    # restart -------------------------------------------------------------------------------
    async def reconcile(self) -> list[str]:
        """JobManager.reconcile (active jobs: _reconcile_one below), then every waiting job
        with a Slurm id is watched again; jobs with a submission intent but no id are looked
        up by name before anything is submitted (_submit_once)."""
        lines = await super().reconcile()
        for rec in self._jobs.values():
            if rec.status in WAITING and rec.slurm_job_id:
                self.executor.track(rec.slurm_job_id, rec.job_id)
        return lines

    async def _reconcile_one(self, rec: JobRecord, respawn: list[JobRecord]) -> str:
        job_id, sid = rec.job_id, rec.slurm_job_id
        if sid is None:
            why = ("no Slurm job id recorded: it was started by another executor (local) "
                   "before benchd ran with --executor slurm; its outcome is not knowable here")
            self._finish(None, JobState.UNKNOWN, job_id=job_id, reason=why)
            return f"job {job_id}: {why}; recorded unknown"
        if rec.status in STOPPING and rec.stop_mode != StopMode.NOW:
            # asked to checkpoint; benchd may have died before the request file was written
            self.executor.request_checkpoint(Handle(job_id, private=sid))
        if not self._reconcile_polled:   # one squeue for every active job, not one each
            self._reconcile_polled = True
            for r in self._jobs.values():
                if r.status in ACTIVE and r.slurm_job_id:
                    self.executor.track(r.slurm_job_id, r.job_id)
            try:
                await self.executor.poll()
            except SlurmError as e:
                self._reconcile_error = str(e)
        if self._reconcile_error is not None and job_id not in self._live \
                and self._jobs[job_id].status not in FINAL:
            e = self._reconcile_error
            self._attach(self._jobs[job_id], None)
            return (f"job {job_id}: Slurm job {sid}: slurmctld does not answer ({e}); kept "
                    f"{self._jobs[job_id].status.value}, watched until it answers")
        if job_id not in self._live and self._jobs[job_id].status not in FINAL:
            self._attach(self._jobs[job_id], self.executor.status_of(sid))
        ended = self.executor.slurm_outcome(job_id)
        if ended is not None:
            return (f"job {job_id}: Slurm job {sid} ended while benchd was down ({ended.text()});"
                    f" its outcome is recorded")
        order = self.store.read_cancel(job_id)
        if order is not None and self._jobs[job_id].status not in FINAL:
            self.executor.resume_cancel(sid, order)
        return f"job {job_id}: Slurm job {sid} {self._jobs[job_id].slurm_state}; reattached"

    async def close(self, *, cancel_running: bool = False) -> None:
        await super().close(cancel_running=cancel_running)
        await self.executor.stop_watching()
