"""The queue in JobManager with real supervisors and the fake orchestrator: queue positions,
priorities and who may set them, the per-user cap, cancel of a waiting job, dependencies,
a restart that keeps the order, and a crash between deciding to start a job and spawning it."""
from __future__ import annotations

import secrets

import msgspec
import pytest

from benchd import procs
from benchd.errors import Forbidden, InvalidRequest, NotPausable, QueueFull
from benchd.jobs import JobManager
from benchd.schema import JobConfig, JobRecord
from benchd.states import JobState
from benchd.store import Store, utc_now
from tests.support import final_record, pids_of_job

CFG = JobConfig(experiments=["gmst_era"], ci=True)


def held(spec, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    return gate


def order(m: JobManager) -> list[str]:
    pos = m.queue_positions()
    return sorted(pos, key=pos.get)


async def test_priority_then_fifo_with_round_robin_between_users(made, spec, tmp_path):
    gate = held(spec, tmp_path)
    m = await made()
    first = await m.start(CFG, uid=1, user="alice")
    assert first.status == JobState.RUNNING
    a = [await m.start(CFG, uid=1, user="alice") for _ in range(3)]
    b = await m.start(CFG, uid=2, user="bob")
    urgent = await m.start(msgspec.structs.replace(CFG, priority=5), uid=0, user="root")
    low = await m.start(msgspec.structs.replace(CFG, priority=-3), uid=2, user="bob")
    assert all(r.status == JobState.QUEUED for r in (*a, b, urgent, low))
    # bob's one job comes after alice's first, not after all three of hers
    assert order(m) == [urgent.job_id, a[0].job_id, b.job_id, a[1].job_id, a[2].job_id,
                        low.job_id]
    assert m.shown(m.get(b.job_id)).queue_position == 3
    queued = order(m)
    gate.touch()
    finals = [await final_record(m, j, timeout=60) for j in [first.job_id, *queued]]
    started = [f.job_id for f in sorted(finals, key=lambda f: f.started_at)]
    assert started == [first.job_id, urgent.job_id, a[0].job_id, b.job_id, a[1].job_id,
                       a[2].job_id, low.job_id]
    assert all(f.status == JobState.COMPLETED and f.spawn_attempts == 1 for f in finals)


async def test_priority_rules_and_patch(made, spec, tmp_path):
    held(spec, tmp_path)
    m = await made()
    await m.start(CFG, uid=1, user="alice")
    with pytest.raises(Forbidden, match="priority"):
        await m.start(msgspec.structs.replace(CFG, priority=1), uid=1, user="alice")
    for bad in (11, -11, "3", True, 2.5):
        with pytest.raises(InvalidRequest, match="priority"):
            await m.start(msgspec.structs.replace(CFG, priority=bad), uid=1, user="alice")
    j1 = await m.start(CFG, uid=1, user="alice")
    j2 = await m.start(CFG, uid=1, user="alice")
    assert order(m) == [j1.job_id, j2.job_id]
    with pytest.raises(Forbidden, match="belongs to alice"):
        await m.set_priority(j2.job_id, 2, -1)          # bob may not touch alice's job
    with pytest.raises(Forbidden, match="above 0"):
        await m.set_priority(j2.job_id, 1, 3)           # alice may not raise it above 0
    low = await m.set_priority(j1.job_id, 1, -2)        # anyone may lower their own
    assert low.priority == -2 and order(m) == [j2.job_id, j1.job_id]
    assert (await m.set_priority(j1.job_id, 0, 7)).priority == 7   # root may raise
    assert order(m) == [j1.job_id, j2.job_id]
    on_disk = msgspec.json.decode((m.root / "logs" / "jobs" / f"{j1.job_id}.json").read_bytes(),
                                  type=JobRecord)
    assert on_disk.priority == 7


async def test_per_user_cap_is_429_with_retry_after(made, spec, tmp_path):
    held(spec, tmp_path)
    m = await made(max_queued_per_user=2)
    await m.start(CFG, uid=1, user="alice")
    await m.start(CFG, uid=1, user="alice")
    await m.start(CFG, uid=1, user="alice")
    with pytest.raises(QueueFull) as e:
        await m.start(CFG, uid=1, user="alice")
    assert "alice" in e.value.message and "2 jobs waiting" in e.value.message
    assert e.value.retry_after >= 1
    assert (await m.start(CFG, uid=2, user="bob")).status == JobState.QUEUED  # bob's own cap


async def test_cancel_of_a_queued_job_is_immediate_and_dependencies(made, spec, tmp_path):
    gate = held(spec, tmp_path)
    m = await made()
    run = await m.start(CFG, uid=1, user="alice")
    q = await m.start(CFG, uid=1, user="alice")
    dep_ok = await m.start(msgspec.structs.replace(CFG, after=[run.job_id]), uid=1, user="a")
    dep_bad = await m.start(msgspec.structs.replace(CFG, after=[q.job_id]), uid=1, user="a")
    dep_any = await m.start(msgspec.structs.replace(CFG, after_any=[q.job_id]), uid=1,
                            user="a")
    chained = await m.start(msgspec.structs.replace(CFG, after=[dep_bad.job_id]), uid=1,
                            user="a")
    for bad, why in ((["nothex"], "not a job id"), (["0123456789ab"], "no job")):
        with pytest.raises(InvalidRequest, match=why):
            await m.start(msgspec.structs.replace(CFG, after=bad), uid=1, user="a")
    cancelled = await m.cancel(q.job_id, 1)
    assert cancelled.status == JobState.CANCELLED and "queued" in cancelled.reason
    assert not pids_of_job(q.job_id)
    # its afterok dependent failed at once, naming it; so did the job chained to that one
    assert m.get(dep_bad.job_id).status == JobState.FAILED
    assert q.job_id in m.get(dep_bad.job_id).reason
    assert m.get(chained.job_id).status == JobState.FAILED
    assert dep_bad.job_id in m.get(chained.job_id).reason
    gate.touch()
    for j in (run.job_id, dep_ok.job_id, dep_any.job_id):
        assert (await final_record(m, j, timeout=60)).status == JobState.COMPLETED
    assert m.get(dep_ok.job_id).started_at >= m.get(run.job_id).finished_at


async def test_restart_keeps_queue_order_priorities_and_holds(made, spec, tmp_path, root):
    gate = held(spec, tmp_path)
    m = await made()
    run = await m.start(CFG, uid=1, user="alice")
    for uid, p in ((1, 0), (2, 0), (1, -1), (3, 0), (2, 2)):
        cfg = msgspec.structs.replace(CFG, priority=p)
        await m.start(cfg, uid=uid if p <= 0 else 0, user=f"u{uid}")
    before = order(m)
    await m.close()   # benchd stops; the running job keeps running
    m2 = await made()
    assert order(m2) == before
    assert m2.active().job_id == run.job_id
    gate.touch()
    for j in [run.job_id, *before]:
        assert (await final_record(m2, j, timeout=60)).status == JobState.COMPLETED


def _starting(attempts: int) -> JobRecord:
    """A record left `starting` by a benchd that died. Its id and token are random, as
    benchd's are: a test's last-resort cleanup kills by job id, and another test process on
    this machine (another xdist worker, another checkout's suite) must not share them."""
    return JobRecord(job_id=secrets.token_hex(6), status=JobState.STARTING, config=CFG,
                     requester_uid=1, requester_name="u", created_at=utc_now(),
                     job_token=secrets.token_hex(16), root_id=None, queue_seq=1,
                     spawn_attempts=attempts)


async def test_crash_between_spawn_intent_and_spawn_starts_the_job_once(made, root, spec):
    """benchd wrote `starting` (the spawn intent, attempt 1) and died before its supervisor
    ran: the restart spawns it exactly once more, and it completes."""
    rec = _starting(1)
    Store(root).save(msgspec.structs.replace(rec, root_id=procs.root_identity(root)))
    m = await made()
    assert m.get(rec.job_id).spawn_attempts == 2
    final = await final_record(m, rec.job_id, timeout=30)
    assert final.status == JobState.COMPLETED and final.spawn_attempts == 2
    log = (root / "logs" / f"{rec.job_id}.log").read_text()
    assert log.count("experiments=gmst_era") == 1   # one orchestrator ran


async def test_crash_after_a_supervisor_was_spawned_but_before_it_locked(made, root, spec):
    """A supervisor carrying the job's marks is alive but holds no lock yet (benchd died
    right after spawning it): the restart kills it by its marks before spawning anew, so
    the job never runs twice."""
    import subprocess
    import sys
    rec = msgspec.structs.replace(_starting(1),
                                  root_id=procs.root_identity(root))
    Store(root).save(rec)
    marks = procs.JobMarks(rec.job_id, rec.job_token, rec.root_id)
    early = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={**__import__("os").environ, **marks.env()})
    try:
        m = await made()
        assert early.wait(timeout=10) == -9        # killed by its marks
        final = await final_record(m, rec.job_id, timeout=30)
        assert final.status == JobState.COMPLETED and final.spawn_attempts == 2
    finally:
        early.kill()
        early.wait()


async def test_a_second_interrupted_spawn_is_failed_not_retried(made, root, spec):
    rec = _starting(2)
    Store(root).save(msgspec.structs.replace(rec, root_id=procs.root_identity(root)))
    m = await made()
    final = m.get(rec.job_id)
    assert final.status == JobState.FAILED and "not tried again" in final.reason
    assert m.active() is None


async def test_slots_count(made, spec, tmp_path):
    gate = held(spec, tmp_path)
    m = await made(slots=2)
    a = await m.start(CFG, uid=1, user="a")
    b = await m.start(CFG, uid=1, user="a")
    c = await m.start(CFG, uid=1, user="a")
    assert [a.status, b.status, c.status] == [JobState.RUNNING, JobState.RUNNING,
                                              JobState.QUEUED]
    assert len(m.active_jobs()) == 2
    gate.touch()
    for j in (a, b, c):
        assert (await final_record(m, j.job_id, timeout=60)).status == JobState.COMPLETED


async def test_hold_keeps_a_queued_job_from_starting_until_resumed(made, spec, tmp_path):
    gate = held(spec, tmp_path)
    m = await made()
    run = await m.start(CFG, uid=1, user="alice")
    a = await m.start(CFG, uid=1, user="alice")
    b = await m.start(CFG, uid=1, user="alice")
    with pytest.raises(Forbidden, match="belongs to alice"):
        await m.pause(a.job_id, 2)
    with pytest.raises(NotPausable, match="not paused"):
        await m.resume(a.job_id, 1)
    assert (await m.pause(a.job_id, 1)).status == JobState.PAUSED
    assert order(m) == [a.job_id, b.job_id]          # it keeps its place
    c = await m.start(CFG, uid=1, user="alice")
    await m.pause(c.job_id, 1)
    gone = await m.cancel(c.job_id, 1)               # a paused job: cancelled at once
    assert gone.status == JobState.CANCELLED and "while paused" in gone.reason
    await m.close()                                  # the hold survives a restart
    m = await made()
    assert m.get(a.job_id).status == JobState.PAUSED
    gate.touch()
    assert (await final_record(m, b.job_id, timeout=60)).status == JobState.COMPLETED
    assert m.get(a.job_id).status == JobState.PAUSED  # the free slot went to b, not a
    assert m.active() is None
    assert (await m.resume(a.job_id, 0)).status in (JobState.STARTING, JobState.RUNNING)
    assert (await final_record(m, a.job_id, timeout=60)).status == JobState.COMPLETED


async def test_retention_never_forgets_a_waiting_jobs_dependency(made, spec, tmp_path):
    """keep-job-days may delete old final jobs, but not one a queued job depends on: the
    dependent would then fail as if its dependency had failed."""
    gate = held(spec, tmp_path)
    m = await made()
    done = await m.start(CFG, uid=1, user="alice")
    blocker = await m.start(CFG, uid=1, user="alice")
    gate.touch()
    await final_record(m, done.job_id)
    await final_record(m, blocker.job_id)
    spec(wait_for_file=str(tmp_path / "gate2"))
    runner = await m.start(CFG, uid=1, user="alice")            # takes the slot
    dependent = await m.start(msgspec.structs.replace(CFG, after=[done.job_id]), uid=1,
                              user="alice")
    assert m.get(dependent.job_id).status == JobState.QUEUED
    assert await m.forget_jobs([done.job_id, blocker.job_id]) != []
    assert done.job_id in [r.job_id for r in m.list_jobs()]    # kept: still needed
    assert blocker.job_id not in [r.job_id for r in m.list_jobs()]
    (tmp_path / "gate2").touch()
    await final_record(m, runner.job_id)
    assert (await final_record(m, dependent.job_id, timeout=60)).status == JobState.COMPLETED
