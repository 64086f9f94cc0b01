"""Pause of a running job and priority preemption in JobManager, with real supervisors and
the fake orchestrator (which honours checkpoint requests and --resume like the pipeline:
tests/support/fake_orchestrator.py): stop at the experiment boundary or at once, the slot
freed, the job kept with its staged run and started again with --resume of that run; one
preemption per needed slot; a benchd killed in the middle of a preemption neither loses the
preempted job nor starts anything twice."""
from __future__ import annotations

import asyncio

import pytest

from benchd.errors import NotPausable
from benchd.jobs import JobManager
from benchd.schema import JobConfig
from benchd.states import JobState, StopMode
from benchd.store import Store
from tests.support import final_record

CFG = JobConfig(experiments=["gmst_era", "equ_ecl", "precession"], ci=True)
URGENT = JobConfig(experiments=["gmst_era"], ci=True, priority=5)


async def status_in(m: JobManager, job_id: str, states: set[JobState], timeout: float = 20.0):
    """The job's record once its status is one of `states` (watch: no polling)."""
    async def first():
        async for rec in m.watch(job_id):
            if rec.status in states:
                return rec
        raise AssertionError(f"job {job_id} ended {rec.status} before reaching {states}")
    return await asyncio.wait_for(first(), timeout)


async def progressed(m: JobManager, job_id: str, timeout: float = 20.0):
    """The job's record once its orchestrator has said which run it works on (it has read
    its spec by then, so the test may change the spec for the next job)."""
    async def first():
        async for rec in m.watch(job_id):
            if rec.progress is not None and rec.progress.run_id:
                return rec
        raise AssertionError(f"job {job_id} ended {rec.status} without progress")
    return await asyncio.wait_for(first(), timeout)


def log_of(root, job_id: str) -> str:
    return (root / "logs" / f"{job_id}.log").read_text()


async def test_pause_of_a_running_job_stops_at_the_boundary_and_resumes_its_run(
        made, spec, root, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), staging=True, resume_ok=True)
    m = await made()
    job = await m.start(CFG, uid=1, user="alice")
    assert job.status == JobState.RUNNING
    rec = await m.pause(job.job_id, 1)
    assert rec.status == JobState.PAUSING and rec.stop_mode == StopMode.BOUNDARY
    assert Store(root).load_all()[0][0].status == JobState.PAUSING  # the intent is on disk
    gate.touch()                         # the job reaches its first boundary
    rec = await status_in(m, job.job_id, {JobState.PAUSED})
    run_id = rec.progress.run_id
    assert rec.resume_run == run_id and rec.checkpoints == 1 and m.active() is None
    assert "checkpointed" in rec.reason and run_id in rec.reason
    assert (root / "results" / ".staging" / run_id).is_dir()
    rec = await m.resume(job.job_id, 1)
    done = await final_record(m, job.job_id)
    assert done.status == JobState.COMPLETED, done.reason
    assert done.run_dir == f"results/{run_id}"          # the same run, finished
    assert f"resume={run_id}" in log_of(root, job.job_id)


async def test_pause_now_stops_at_once_and_resume_starts_it_again(made, spec, root, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), staging=True, resume_ok=True)
    m = await made()
    job = await m.start(CFG, uid=1, user="alice")
    await progressed(m, job.job_id)     # its staged run exists
    rec = await m.pause(job.job_id, 1, now=True)
    assert rec.status in (JobState.PAUSING, JobState.PAUSED)
    rec = await status_in(m, job.job_id, {JobState.PAUSED})
    assert rec.reason.startswith("paused by") and "SIGTERM" in rec.reason, rec.reason
    assert rec.cancel_requested_by is None and rec.resume_run == rec.progress.run_id
    gate.touch()
    with pytest.raises(NotPausable, match="not paused"):
        await m.resume((await m.start(CFG, uid=1, user="alice")).job_id, 1)
    await m.resume(job.job_id, 1)
    done = await final_record(m, job.job_id)
    assert done.status == JobState.COMPLETED, done.reason
    assert f"resume={rec.resume_run}" in log_of(root, job.job_id)


async def test_cancel_of_a_pausing_job_cancels_it(made, spec, tmp_path):
    spec(wait_for_file=str(tmp_path / "never"), staging=True, resume_ok=True)
    m = await made()
    job = await m.start(CFG, uid=1, user="alice")
    await m.pause(job.job_id, 1)
    done = await m.cancel(job.job_id, 1)
    assert done.status == JobState.CANCELLED, done.reason


async def test_preemption_frees_one_slot_per_higher_priority_job(made, spec, root, tmp_path):
    """Two low jobs run on two slots; one priority-5 job preempts exactly one of them (the one
    started last), at its boundary; it runs, then the preempted one resumes its run."""
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), staging=True, resume_ok=True)
    m = await made(slots=2)
    low1 = await m.start(CFG, uid=1, user="alice")
    low2 = await m.start(CFG, uid=2, user="bob")
    assert {low1.status, low2.status} == {JobState.RUNNING}
    await progressed(m, low1.job_id)
    await progressed(m, low2.job_id)
    urgent = await m.start(URGENT, uid=0, user="root")
    assert urgent.status == JobState.QUEUED
    assert m.get(low2.job_id).status == JobState.PREEMPTING
    assert m.get(low2.job_id).preempted_by == urgent.job_id
    assert m.get(low1.job_id).status == JobState.RUNNING       # no storm
    spec(staging=True, resume_ok=True)                                         # the urgent job runs through
    gate.touch()
    assert (await final_record(m, urgent.job_id)).status == JobState.COMPLETED
    for low in (low1, low2):
        done = await final_record(m, low.job_id)
        assert done.status == JobState.COMPLETED, done.reason
    assert m.get(low2.job_id).checkpoints == 1 and m.get(low1.job_id).checkpoints == 0
    assert f"resume={m.get(low2.job_id).resume_run}" in log_of(root, low2.job_id)
    assert "resume=None" in log_of(root, low1.job_id) and m.get(low1.job_id).resume_run is None


async def test_preempt_now_sends_sigterm_at_once(made, spec, root, tmp_path):
    spec(wait_for_file=str(tmp_path / "never"), staging=True, resume_ok=True)
    m = await made()
    low = await m.start(CFG, uid=1, user="alice")
    await progressed(m, low.job_id)
    spec(staging=True, resume_ok=True)
    import msgspec
    urgent = await m.start(msgspec.structs.replace(URGENT, preempt=StopMode.NOW), 0, "root")
    rec = await status_in(m, low.job_id, {JobState.PREEMPTED, JobState.STARTING})
    assert rec.checkpoints == 1 and rec.reason.startswith("preempted by"), rec.reason
    for job_id in (urgent.job_id, low.job_id):
        done = await final_record(m, job_id)
        assert done.status == JobState.COMPLETED, (done.reason, log_of(root, job_id))


async def _supervisor_gone(root, job_id: str, timeout: float = 20.0) -> None:
    from benchd import procs
    paths = Store(root).paths(job_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while not (paths.exit.exists() and not procs.lock_is_held(paths.lock)):
        assert asyncio.get_running_loop().time() < deadline, "supervisor did not exit"
        await asyncio.sleep(0.01)


async def test_an_exclusive_job_short_of_cpus_preempts_the_lower_job_holding_one(
        made, spec, root, tmp_path):
    """Two slots on CPUs 0 and 1, one low-priority job on one of them: a slot is free, but an
    exclusive priority-5 job needs both CPUs, so the low job is preempted for it."""
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), staging=True, resume_ok=True)
    m = await made(slots=2, cpus=[0, 1])
    low = await m.start(CFG, uid=1, user="alice")
    await progressed(m, low.job_id)
    spec(staging=True, resume_ok=True)
    import msgspec
    urgent = await m.start(msgspec.structs.replace(URGENT, exclusive=True), 0, "root")
    assert urgent.status == JobState.QUEUED
    rec = m.get(low.job_id)
    assert rec.status == JobState.PREEMPTING and rec.preempted_by == urgent.job_id, rec
    gate.touch()                                   # it reaches its boundary and stops
    await _both_complete(m, root, low.job_id, urgent.job_id)
    assert m.get(urgent.job_id).cpuset == [0, 1]
    assert m.get(low.job_id).checkpoints == 1


async def _low_being_preempted(made, spec, tmp_path):
    """A low-priority job held in its first experiment by a gate file, being preempted by a
    priority-5 job: (manager, low, urgent, gate)."""
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), staging=True, resume_ok=True)
    m = await made()
    low = await m.start(CFG, uid=1, user="alice")
    await progressed(m, low.job_id)
    spec(staging=True, resume_ok=True)
    urgent = await m.start(URGENT, uid=0, user="root")
    assert m.get(low.job_id).status == JobState.PREEMPTING
    return m, low, urgent, gate


async def _both_complete(m, root, low_id: str, urgent_id: str) -> None:
    """Both jobs complete, the urgent one started once."""
    for job_id in (urgent_id, low_id):
        done = await final_record(m, job_id)
        assert done.status == JobState.COMPLETED, (done.reason, log_of(root, job_id))
    assert log_of(root, urgent_id).count("fake orchestrator pid") == 1


async def test_a_crash_between_the_preemption_intent_and_the_ask_asks_again(
        made, spec, root, tmp_path):
    m, low, urgent, gate = await _low_being_preempted(made, spec, tmp_path)
    request = Store(root).paths(low.job_id).checkpoint
    request.unlink()               # as if benchd died after writing the intent, before asking
    await m.close()                # benchd goes; the job keeps running
    m = await made()
    assert request.exists()        # the restarted benchd asked again
    assert m.get(urgent.job_id).status == JobState.QUEUED
    gate.touch()
    await _both_complete(m, root, low.job_id, urgent.job_id)
    assert log_of(root, low.job_id).count("fake orchestrator pid") == 2      # two segments


async def test_a_job_checkpointed_while_benchd_was_down_is_preempted_not_lost(
        made, spec, root, tmp_path):
    m, low, urgent, gate = await _low_being_preempted(made, spec, tmp_path)
    await m.close()
    gate.touch()                                   # it checkpoints (exit 75) with no benchd
    await _supervisor_gone(root, low.job_id)
    m = await made()
    rec = m.get(low.job_id)
    assert rec.status in (JobState.PREEMPTED, JobState.STARTING, JobState.RUNNING), rec
    assert rec.checkpoints == 1 and rec.resume_run is not None
    await _both_complete(m, root, low.job_id, urgent.job_id)
