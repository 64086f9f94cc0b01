"""Job records on disk: atomic saves, history load, malformed files moved aside."""
from __future__ import annotations

import asyncio

import msgspec

from benchd.jobs import JobManager
from benchd.schema import ExitRecord, JobConfig, JobRecord
from benchd.states import JobState
from benchd.store import Store, utc_now


def record(job_id: str, status: JobState = JobState.COMPLETED, created: str | None = None):
    return JobRecord(job_id=job_id, status=status, config=JobConfig(n=5),
                     requester_uid=1, requester_name="u", created_at=created or utc_now())


def test_save_load_roundtrip_oldest_first(tmp_path):
    s = Store(tmp_path)
    a = record("aaaaaaaaaaaa", created="2026-01-02T00:00:00.000+00:00")
    b = record("bbbbbbbbbbbb", created="2026-01-01T00:00:00.000+00:00")
    s.save(a)
    s.save(b)
    recs, warnings = s.load_all()
    assert recs == [b, a] and warnings == []
    assert not [p for p in s.jobs_dir.iterdir() if p.name.endswith(".tmp")]


def test_malformed_records_are_moved_aside_not_fatal(tmp_path):
    s = Store(tmp_path)
    good = record("0123456789ab")
    s.save(good)
    full = msgspec.json.encode(record("cccccccccccc"))
    bad = {
        "111111111111.json": b"",                                   # empty
        "222222222222.json": full[: len(full) // 2],                 # truncated
        "333333333333.json": b"\x00\xffnot json",                    # garbage
        "444444444444.json": b'{"job_id": "444444444444"}',          # missing fields
        "555555555555.json": msgspec.json.encode(record("666666666666")),  # names another job
        "777777777777.json": full.replace(b'"completed"', b'"exploded"'),  # unknown state
    }
    for name, data in bad.items():
        (s.jobs_dir / name).write_bytes(data)
    (s.jobs_dir / "README.txt").write_text("not a record")           # ignored, kept
    recs, warnings = s.load_all()
    assert recs == [good]
    assert len(warnings) == len(bad)
    for name in bad:
        assert not (s.jobs_dir / name).exists()
        assert any(name in w for w in warnings)
    moved = sorted(p.name.split(".json")[0] for p in s.corrupt_dir.iterdir())
    assert moved == sorted(n[:-5] for n in bad)
    assert (s.jobs_dir / "README.txt").exists()
    # a second load finds nothing left to complain about
    assert s.load_all() == ([good], [])


def test_finalized_jobs_leftover_side_files_are_removed(tmp_path):
    s = Store(tmp_path)
    s.save(record("0123456789ab", JobState.COMPLETED))
    s.save(record("ba9876543210", JobState.RUNNING))
    for job_id in ("0123456789ab", "ba9876543210"):
        s.write_exit(ExitRecord(job_id=job_id, exit_code=0, signal=None, cancelled=False,
                                finished_at=utc_now()))
        s.paths(job_id).lock.touch()
    s.load_all()
    assert not s.paths("0123456789ab").exit.exists()
    assert not s.paths("0123456789ab").lock.exists()
    assert s.paths("ba9876543210").exit.exists()  # not final yet: reconcile needs it
    assert s.read_exit("ba9876543210").exit_code == 0


def test_side_file_readers_tolerate_garbage(tmp_path):
    s = Store(tmp_path)
    s.paths("0123456789ab").exit.write_bytes(b"{")
    s.paths("0123456789ab").cancel.write_bytes(b"")
    assert s.read_exit("0123456789ab") is None
    assert s.read_cancel("0123456789ab") is None
    assert s.read_info("0123456789ab") is None


def test_manager_reconcile_reports_corrupt_and_keeps_history(tmp_path):
    s = Store(tmp_path)
    s.save(record("0123456789ab"))
    (s.jobs_dir / "111111111111.json").write_bytes(b"{trunc")

    async def go():
        m = JobManager(tmp_path)
        lines = await m.reconcile()
        ids = [r.job_id for r in m.list_jobs()]
        await m.close()
        return lines, ids
    lines, ids = asyncio.run(go())
    assert ids == ["0123456789ab"]
    assert len(lines) == 1 and "111111111111.json" in lines[0] and "corrupt" in lines[0]
