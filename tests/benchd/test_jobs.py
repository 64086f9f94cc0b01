"""JobManager with real supervisors and the fake orchestrator: start, busy, complete, fail."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import msgspec
import pytest

from benchd.errors import Busy, InvalidRequest, JobNotFound
from benchd.jobs import JobManager
from benchd.schema import JobConfig, JobRecord, Progress
from benchd.states import FINAL, JobState
from tests.support import (async_wait_until, fake_orchestrator_argv, final_record,
                           kill_job_processes, pids_of_job)

CFG = JobConfig(experiments=["gmst_era", "equ_ecl"], ci=True)


@pytest.fixture
async def manager(tmp_path, spec):
    root = tmp_path / "root"
    root.mkdir()
    m = JobManager(root, orchestrator=fake_orchestrator_argv(), grace=5.0)
    assert await m.reconcile() == []
    yield m
    await m.close()
    for rec in m.list_jobs():
        kill_job_processes(rec.job_id)


async def test_start_runs_to_completed_with_record_and_log(manager, tmp_path):
    rec = await manager.start(CFG, uid=1234, user="alice")
    assert rec.status == JobState.RUNNING
    assert rec.started_at and rec.supervisor_pid and rec.pgid
    final = await final_record(manager, rec.job_id)
    assert final.status == JobState.COMPLETED
    assert final.exit_code == 0 and final.reason is None
    assert final.progress.k == 2 and final.progress.total == 2
    assert final.run_dir and final.run_dir.startswith("results/")
    on_disk = msgspec.json.decode((manager.root / "logs" / "jobs" / f"{rec.job_id}.json")
                                  .read_bytes(), type=JobRecord)
    assert on_disk == final
    log = (manager.root / "logs" / f"{rec.job_id}.log").read_text()
    assert "experiments=gmst_era,equ_ecl n=200 seed=42 perf_rounds=3" in log
    assert "line 2 of 3" in log
    # supervisor files are gone once the record holds the outcome; nothing of the job is left
    assert sorted(p.name for p in (manager.root / "logs" / "jobs").iterdir()) == \
        [f"{rec.job_id}.json"]
    assert pids_of_job(rec.job_id) == []
    assert manager.active() is None
    assert manager.get(rec.job_id) == final
    assert manager.list_jobs() == [final]


async def test_nonzero_exit_is_failed_with_reason_and_last_line(manager, spec):
    spec(exit_code=3, stderr_line="ValueError: bad things")
    rec = await manager.start(CFG, uid=1, user="u")
    final = await final_record(manager, rec.job_id)
    assert final.status == JobState.FAILED
    assert final.exit_code == 3
    assert final.reason == "exited with code 3: ValueError: bad things"


async def test_orchestrator_that_cannot_start_fails(tmp_path, spec):
    m = JobManager(tmp_path, orchestrator=[str(tmp_path / "no-such-program")])
    await m.reconcile()
    rec = await m.start(CFG, uid=1, user="u")
    assert rec.status == JobState.FAILED
    assert "failed to start" in rec.reason and "no-such-program" in rec.reason
    assert m.active() is None
    await m.close()


async def test_concurrent_starts_that_refuse_to_queue_exactly_one_wins(manager, spec, tmp_path):
    """With "queue": false a start is refused (busy) when the one slot is taken."""
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    no_queue = msgspec.structs.replace(CFG, queue=False)
    results = await asyncio.gather(*(manager.start(no_queue, uid=1, user="u")
                                     for _ in range(3)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, JobRecord)]
    losers = [r for r in results if isinstance(r, Busy)]
    assert len(winners) == 1 and len(losers) == 2, results
    job_id = winners[0].job_id
    assert all(b.active_job_id == job_id and job_id in b.message for b in losers)
    assert manager.active().job_id == job_id
    with pytest.raises(Busy):
        await manager.start(no_queue, uid=1, user="u")
    gate.touch()
    final = await final_record(manager, job_id)
    assert final.status == JobState.COMPLETED
    assert len(manager.list_jobs()) == 1
    again = await manager.start(CFG, uid=1, user="u")  # idle again: a new job may start
    assert again.job_id != job_id
    await final_record(manager, again.job_id)


@pytest.mark.parametrize("body, field", [
    (JobConfig(n=0), "n"),
    (JobConfig(experiments=["nope"]), "experiments"),
    (JobConfig(perf_rounds=10**9), "perf_rounds"),
    (JobConfig(seed=-1), "seed"),
])
async def test_bad_config_names_the_field_and_starts_nothing(manager, body, field):
    with pytest.raises(InvalidRequest) as ei:
        await manager.start(body, uid=1, user="u")
    assert ei.value.message.startswith(f"{field}:")
    assert manager.list_jobs() == []
    assert list((manager.root / "logs" / "jobs").iterdir()) == []


async def test_get_unknown_and_invalid_ids(manager):
    for bad in ("0123456789ab", "../../etc/pas", "", "ABCDEF012345", "0123456789abc"):
        with pytest.raises(JobNotFound):
            manager.get(bad)
        with pytest.raises(JobNotFound):
            manager.log_path(bad)


async def test_list_filters_and_limits(manager):
    ids = []
    for _ in range(3):
        rec = await manager.start(CFG, uid=1, user="u")
        await final_record(manager, rec.job_id)
        ids.append(rec.job_id)
    assert [r.job_id for r in manager.list_jobs()] == ids[::-1]
    assert [r.job_id for r in manager.list_jobs(limit=2)] == ids[:0:-1]
    assert manager.list_jobs(statuses=frozenset({JobState.FAILED})) == []
    assert len(manager.list_jobs(statuses=FINAL)) == 3


async def test_watch_sees_running_then_final(manager, spec, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    rec = await manager.start(CFG, uid=1, user="u")
    seen = []

    async def collect():
        async for r in manager.watch(rec.job_id):
            seen.append(r.status)
    task = asyncio.create_task(collect())
    await async_wait_until(lambda: seen, what="first watch record")
    assert seen[0] == JobState.RUNNING
    gate.touch()
    await asyncio.wait_for(task, 20)
    assert seen[-1] == JobState.COMPLETED
    assert os.path.exists(manager.root / "logs" / f"{rec.job_id}.log")


async def test_follow_log_reconnecting_with_offset_gets_every_byte_once(manager, spec):
    spec(lines=400, lines_per_s=2000)
    rec = await manager.start(CFG, uid=1, user="u")
    got = bytearray()
    # first connection: read a few chunks, then drop it
    stream = manager.follow_log(rec.job_id, 0)
    async for chunk in stream:
        got += chunk
        if len(got) > 500:
            break
    await stream.aclose()
    # reconnect from the byte offset reached, follow to the end of the job
    async for chunk in manager.follow_log(rec.job_id, len(got)):
        got += chunk
    final = manager.get(rec.job_id)
    assert final.status == JobState.COMPLETED  # follow ends only once the job is final
    assert bytes(got) == manager.log_path(rec.job_id).read_bytes()
    assert got.count(b"line ") == 400
    # a finished job: follow=False and follow=True both give what is there and end
    whole = bytes(got)
    off = await manager.tail_offset(rec.job_id, 2)
    assert whole[off:].count(b"\n") == 2
    assert b"".join([c async for c in manager.follow_log(rec.job_id, off)]) == whole[off:]
    assert b"".join([c async for c in manager.follow_log(rec.job_id, off, follow=False)]) \
        == whole[off:]
    assert manager.log_size(rec.job_id) == len(whole)


async def test_follow_log_bad_offsets(manager):
    rec = await manager.start(CFG, uid=1, user="u")
    async for _ in manager.watch(rec.job_id):
        pass
    size = manager.log_size(rec.job_id)
    assert [c async for c in manager.follow_log(rec.job_id, size)] == []
    for bad in (size + 1, -1):
        with pytest.raises(InvalidRequest) as ei:
            manager.follow_log(rec.job_id, bad)
        assert ei.value.message.startswith("offset:")
    with pytest.raises(JobNotFound):
        manager.follow_log("ffffffffffff", 0)


async def test_supervisor_dying_before_running_is_failed_not_unknown(manager, monkeypatch):
    """A supervisor that cannot even start (here: its module is not importable) never says
    "running": the job provably never ran, so it is FAILED with a pointer to the log."""
    import benchd.executors.local as local_executor
    real_popen = local_executor.subprocess.Popen

    def broken_popen(cmd, **kw):
        cmd = [c if c != "benchd.supervisor" else "benchd.no_such_supervisor" for c in cmd]
        return real_popen(cmd, **kw)
    monkeypatch.setattr(local_executor.subprocess, "Popen", broken_popen)
    rec = await manager.start(CFG, uid=1, user="u")
    assert rec.status == JobState.FAILED
    assert "exited before starting the orchestrator" in rec.reason
    assert "No module named benchd.no_such_supervisor" in manager.log_path(rec.job_id).read_text()
    assert manager.active() is None


PROGRESS_FLOOD = """
import sys
sys.path.insert(0, sys.argv[1])
from pipeline import progress
names = ["gmst_era", "equ_ecl", "precession"]
for i in range(600):
    k = i // 200 + 1
    progress.emit(progress.PHASES[1 + i % 5], run_id="r1", k=k, total=3,
                  experiment=names[k - 1], adapter="a%d" % (i % 7))
progress.emit("published", run_id="r1", k=3, total=3, run_dir="results/r1")
"""


async def test_progress_is_tracked_but_not_written_per_line(tmp_path):
    root = tmp_path / "root"
    repo = str(Path(__file__).resolve().parents[2])
    changes: list[JobRecord] = []
    m = JobManager(root, orchestrator=[sys.executable, "-c", PROGRESS_FLOOD, repo],
                   on_change=changes.append)
    await m.reconcile()
    saves = []
    real_save = m.store.save
    m.store.save = lambda rec: (saves.append(rec), real_save(rec))[1]  # count, then write
    rec = await m.start(CFG, uid=1, user="u")
    async for final in m.watch(rec.job_id):
        pass
    await m.close()
    assert final.status == JobState.COMPLETED
    assert final.progress == Progress(k=3, total=3, phase="published", run_id="r1")
    assert final.run_dir == "results/r1"
    # 601 progress lines, a handful of writes: starting, running, a few flushes, final
    assert 3 <= len(saves) <= 12, len(saves)
    assert changes and changes[-1] == final  # on_change saw every persisted change
    assert [c.status for c in changes][:2] == [JobState.STARTING, JobState.RUNNING]


async def test_concurrent_starts_queue_behind_the_one_that_runs(manager, spec, tmp_path):
    """By default a start with no free slot is queued (FIFO), and each queued job starts once
    the slot is free: never two at once, none twice."""
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    results = await asyncio.gather(*(manager.start(CFG, uid=1, user="u") for _ in range(3)))
    running = [r for r in results if r.status == JobState.RUNNING]
    queued = sorted((r for r in results if r.status == JobState.QUEUED),
                    key=lambda r: r.queue_seq)
    assert len(running) == 1 and len(queued) == 2, results
    assert [r.queue_position for r in queued] == [1, 2]
    gate.touch()
    finals = [await final_record(manager, r.job_id) for r in (running[0], *queued)]
    assert [f.status for f in finals] == [JobState.COMPLETED] * 3
    for before, after in zip(finals, finals[1:]):  # one at a time, in queue order
        assert after.started_at >= before.finished_at
    assert all(f.spawn_attempts == 1 for f in finals)
