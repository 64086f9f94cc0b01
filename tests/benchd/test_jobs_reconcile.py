"""benchd killed -9 and restarted: a new JobManager reconciles what it finds on disk and in
/proc. "benchd" is tests/support/jobhost.py, a JobManager in its own process."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from benchd.jobs import JobManager
from benchd.schema import JobConfig, JobRecord
from benchd.states import JobState
from benchd.supervisor import _user_name  # 'alice', else 'uid N'
from benchd.store import Store, utc_now
from tests.support import (JOBHOST, fake_orchestrator_argv, final_record, grandchild_started,
                           kill_job_processes,
                           pid_alive, pids_of_job, wait_until, write_spec)


@pytest.fixture
def spec(tmp_path, monkeypatch):
    path = tmp_path / "spec.json"
    monkeypatch.setenv("FAKE_ORCHESTRATOR_SPEC", str(path))
    return lambda **kw: write_spec(path, **kw)


@pytest.fixture
def host(root):
    """Start a jobhost that starts one job; returns its first record. Killed on teardown."""
    procs: list[subprocess.Popen] = []
    job_ids: list[str] = []

    def start(config: dict) -> dict:
        p = subprocess.Popen([sys.executable, str(JOBHOST), str(root), "--start",
                              json.dumps(config)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        for line in p.stdout:
            ev = json.loads(line)
            if ev["event"] == "started":
                job_ids.append(ev["record"]["job_id"])
                return ev["record"]
        raise AssertionError("jobhost ended without starting a job")
    yield start
    for p in procs:
        p.kill()
        p.wait(10)
    for job_id in job_ids:
        kill_job_processes(job_id)


async def test_reattach_after_benchd_killed_follows_to_true_exit_code(root, spec, host,
                                                                     tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate), exit_code=7, lines=2)
    rec = host({"experiments": ["gmst_era", "equ_ecl", "precession"]})
    job_id = rec["job_id"]
    os.kill(rec["supervisor_pid"], 0)
    # kill -9 "benchd": the job must not notice
    hosts_pid = int(Path(f"/proc/{rec['supervisor_pid']}/stat").read_text().split()[3])
    os.kill(hosts_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(hosts_pid), what="host gone")
    assert pid_alive(rec["supervisor_pid"])
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    try:
        lines = await m.reconcile()
        assert lines == [f"job {job_id}: supervisor pid {rec['supervisor_pid']} still running;"
                         " reattached"]
        active = m.active()
        assert active is not None and active.job_id == job_id
        assert active.status == JobState.RUNNING
        # log written after the restart is followed to the end
        chunks = []

        async def follow():
            async for c in m.follow_log(job_id, 0):
                chunks.append(c)
        follower = asyncio.create_task(follow())
        gate.touch()
        final = await final_record(m, job_id)
        await asyncio.wait_for(follower, 10)
        assert final.status == JobState.FAILED and final.exit_code == 7
        assert final.reason.startswith("exited with code 7")
        assert final.progress.k == 3 and final.progress.total == 3
        assert final.progress.phase == "experiment_done"
        text = b"".join(chunks).decode()
        assert text == m.log_path(job_id).read_text()
        assert text.count("experiment_done") == 3
        assert pids_of_job(job_id) == []
        assert m.active() is None
    finally:
        await m.close()


async def test_job_that_ended_while_benchd_was_down_is_finalized(root, spec, host, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    rec = host({"experiments": ["gmst_era"]})
    job_id = rec["job_id"]
    host_pid = int(Path(f"/proc/{rec['supervisor_pid']}/stat").read_text().split()[3])
    os.kill(host_pid, signal.SIGKILL)
    gate.touch()
    exit_file = root / "logs" / "jobs" / f"{job_id}.exit"
    wait_until(lambda: exit_file.exists() and not pids_of_job(job_id), what="job finished")
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    try:
        lines = await m.reconcile()
        final = await final_record(m, job_id)
        assert final.status == JobState.COMPLETED and final.exit_code == 0
        assert final.run_dir and final.run_dir.startswith("results/")  # from the log
        assert len(lines) == 1 and job_id in lines[0]
        on_disk = msgspec.json.decode((root / "logs" / "jobs" / f"{job_id}.json").read_bytes(),
                                      type=JobRecord)
        assert on_disk.status == JobState.COMPLETED
        assert not exit_file.exists()
    finally:
        await m.close()


async def test_supervisor_killed_while_benchd_down_is_unknown_and_cleaned(root, spec, host,
                                                                         tmp_path):
    spec(wait_for_file=str(tmp_path / "never"), double_fork=True)
    rec = host({"experiments": ["gmst_era"]})
    job_id = rec["job_id"]
    wait_until(lambda: grandchild_started(job_id), what="grandchild started")
    host_pid = int(Path(f"/proc/{rec['supervisor_pid']}/stat").read_text().split()[3])
    os.kill(host_pid, signal.SIGKILL)
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(rec["supervisor_pid"]), what="supervisor gone")
    orphans = pids_of_job(job_id)
    assert len(orphans) >= 2  # orchestrator and grandchild survive their supervisor
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    try:
        lines = await m.reconcile()
        final = m.get(job_id)
        assert final.status == JobState.UNKNOWN
        assert "vanished" in final.reason and f"pid {rec['supervisor_pid']}" in final.reason
        assert len(lines) == 1 and "recorded unknown" in lines[0]
        wait_until(lambda: not pids_of_job(job_id), timeout=5, what="leftovers killed")
        assert m.active() is None
        # the manager is usable: a new job starts
        spec()
        new = await m.start(JobConfig(experiments=["gmst_era"]), 1, "u")
        assert (await final_record(m, new.job_id)).status == JobState.COMPLETED
    finally:
        await m.close()


async def test_starting_record_without_supervisor_is_failed(root):
    store = Store(root)
    rec = JobRecord(job_id="0123456789ab", status=JobState.STARTING, config=JobConfig(),
                    requester_uid=1, requester_name="u", created_at=utc_now())
    store.save(rec)
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    lines = await m.reconcile()
    assert lines == ["job 0123456789ab: never started; recorded failed"]
    assert m.get("0123456789ab").status == JobState.FAILED
    assert m.active() is None
    await m.close()


async def test_running_record_with_dead_supervisor_pid_is_unknown(root):
    """A record that names a pid now used by someone else (start ticks differ)."""
    store = Store(root)
    rec = JobRecord(job_id="0123456789ab", status=JobState.RUNNING, config=JobConfig(),
                    requester_uid=1, requester_name="u", created_at=utc_now(),
                    supervisor_pid=os.getpid(), supervisor_start_ticks=1, pgid=None)
    store.save(rec)
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    lines = await m.reconcile()
    assert m.get("0123456789ab").status == JobState.UNKNOWN
    assert "recorded unknown" in lines[0]
    assert pid_alive(os.getpid())  # we were not mistaken for the supervisor
    await m.close()


async def test_close_leaves_job_running_and_next_manager_reattaches(root, spec, tmp_path):
    gate = tmp_path / "gate"
    spec(wait_for_file=str(gate))
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    await m.reconcile()
    rec = await m.start(JobConfig(experiments=["gmst_era"]), 1, "u")
    try:
        await m.close()
        assert pid_alive(rec.supervisor_pid)
        m2 = JobManager(root, orchestrator=fake_orchestrator_argv())
        lines = await m2.reconcile()
        assert "reattached" in lines[0]
        gate.touch()
        assert (await final_record(m2, rec.job_id)).status == JobState.COMPLETED
        await m2.close()
    finally:
        kill_job_processes(rec.job_id)


async def test_close_with_cancel_running_cancels(root, spec, tmp_path):
    spec(wait_for_file=str(tmp_path / "never"))
    m = JobManager(root, orchestrator=fake_orchestrator_argv(), grace=2.0)
    await m.reconcile()
    rec = await m.start(JobConfig(experiments=["gmst_era"]), 1, "u")
    try:
        await m.close(cancel_running=True)
        assert m.get(rec.job_id).status == JobState.CANCELLED
        assert pids_of_job(rec.job_id) == []
    finally:
        kill_job_processes(rec.job_id)


async def test_reattached_job_can_be_cancelled(root, spec, host, tmp_path):
    spec(wait_for_file=str(tmp_path / "never"), double_fork=True)
    rec = host({"experiments": ["gmst_era"]})
    job_id = rec["job_id"]
    wait_until(lambda: grandchild_started(job_id), what="grandchild started")
    host_pid = int(Path(f"/proc/{rec['supervisor_pid']}/stat").read_text().split()[3])
    os.kill(host_pid, signal.SIGKILL)
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    try:
        assert "reattached" in (await m.reconcile())[0]
        final = await asyncio.wait_for(m.cancel(job_id, uid=1000, grace=2.0), 15)
        assert final.status == JobState.CANCELLED
        assert final.reason.startswith(f"cancelled by {_user_name(1000)}")
        assert pids_of_job(job_id) == []
    finally:
        await m.close()


async def test_unmarked_leftovers_are_killed_through_their_group(root, tmp_path):
    """The orchestrator runs under `env -i`, so nothing of it carries BENCHD_JOB_ID; when its
    supervisor is killed while benchd is down, the restarted benchd still kills it, through
    the process group named (and verified by start ticks) in the supervisor's pid file."""
    spec = write_spec(tmp_path / "spec.json", wait_for_file=str(tmp_path / "never"))
    orch = ["env", "-i", f"FAKE_ORCHESTRATOR_SPEC={spec}", *fake_orchestrator_argv()]
    m = JobManager(root, orchestrator=orch)
    await m.reconcile()
    rec = await m.start(JobConfig(experiments=["gmst_era"]), 1, "u")
    await m.close()  # leave it running, as benchd does on stop
    info = Store(root).read_info(rec.job_id)
    try:
        assert info.orchestrator_pid == rec.pgid and info.orchestrator_start_ticks
        wait_until(lambda: Path(f"/proc/{rec.pgid}/cmdline").read_bytes().split(b"\0")[0]
                   == sys.executable.encode(),   # before: the forked child, then `env`
                   what="env exec'd the orchestrator")
        env = Path(f"/proc/{rec.pgid}/environ").read_bytes()
        assert b"BENCHD_JOB_ID" not in env
        os.kill(rec.supervisor_pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(rec.supervisor_pid), what="supervisor gone")
        assert pid_alive(rec.pgid)
        m2 = JobManager(root, orchestrator=orch)
        lines = await m2.reconcile()
        assert m2.get(rec.job_id).status == JobState.UNKNOWN
        assert f"1 leftover process(es) killed: {rec.pgid} (python" in lines[0]
        wait_until(lambda: not pid_alive(rec.pgid), timeout=5, what="orchestrator killed")
        await m2.close()
    finally:
        try:
            os.killpg(rec.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_leftover_kill_looks_again_for_processes_forked_during_it(monkeypatch, tmp_path) -> None:
    """Reconcile kills a dead supervisor's leftovers by scanning /proc for the job's marks.
    A process forked between that scan and the kills (a double fork in flight) must be found
    by a later scan. The window is too narrow to hit on purpose, so the first scan is made to
    miss one real, marked, setsid'd process (the only stand-in; processes and kills are real)."""
    from benchd import procs
    from benchd.executors import local
    marks = procs.JobMarks("0123456789fe", "ab" * 16, procs.root_identity(tmp_path))
    env = {**os.environ, **marks.env()}
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                             start_new_session=True) for _ in range(2)]
    try:
        wait_until(lambda: len(procs.job_pids(marks)) == 2, what="marked processes")
        real_scan, calls = procs.job_pids, []

        def first_scan_misses_one(m: procs.JobMarks,
                                  exclude: frozenset[int] = frozenset()) -> list[int]:
            calls.append(m)
            found = real_scan(m, exclude)
            return [p for p in found if p != kids[1].pid] if len(calls) == 1 else found

        monkeypatch.setattr(procs, "job_pids", first_scan_misses_one)
        assert len(local._kill_leftovers(marks, None)) == 2
        for k in kids:
            assert k.wait(timeout=10) == -signal.SIGKILL
    finally:
        for k in kids:
            k.kill()
            k.wait()


def _as_written_before_tokens(root: Path, job_id: str) -> None:
    """Rewrite a job's record and pid file as a benchd older than job tokens wrote them."""
    for name in (f"{job_id}.json", f"{job_id}.pid"):
        path = root / "logs" / "jobs" / name
        obj = json.loads(path.read_bytes())
        obj.pop("job_token", None)
        obj.pop("root_id", None)
        path.write_text(json.dumps(obj))


@pytest.mark.parametrize("copied", [False, True], ids=["same-root", "hardlinked-copy"])
async def test_record_from_before_tokens_falls_back_to_job_id_only_in_its_own_root(
        root, spec, tmp_path, copied):
    """A running job's record (and pid file) without a token, as older versions wrote them.
    In its own root, a dead supervisor's leftovers are still found by BENCHD_JOB_ID (the old
    behaviour), since they run in this root. In a hard-linked copy of logs/ (the lock is the
    very inode the live supervisor holds), the copy's benchd neither reattaches to the
    original's supervisor nor kills anything: they run in another root."""
    spec(wait_for_file=str(tmp_path / "never"), double_fork=True)
    m = JobManager(root, orchestrator=fake_orchestrator_argv())
    await m.reconcile()
    rec = await m.start(JobConfig(experiments=["gmst_era"]), 1, "u")
    job_id = rec.job_id
    try:
        await m.close()  # leave it running, as benchd does on stop
        job_pids = wait_until(lambda: grandchild_started(job_id), what="grandchild started")
        _as_written_before_tokens(root, job_id)
        if copied:
            other = tmp_path / "copy"
            other.mkdir()
            subprocess.run(["cp", "-al", str(root / "logs"), str(other / "logs")], check=True,
                           timeout=30)
        else:
            other = root
            os.kill(rec.supervisor_pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(rec.supervisor_pid), what="supervisor gone")
            job_pids = pids_of_job(job_id)
        assert len(job_pids) >= 2
        m2 = JobManager(other, orchestrator=fake_orchestrator_argv())
        lines = await m2.reconcile()
        assert m2.active() is None and m2.get(job_id).status == JobState.UNKNOWN, lines
        if copied:
            assert "no leftover process found" in lines[0], lines
            assert all(pid_alive(p) for p in [rec.supervisor_pid, *job_pids])
        else:
            assert f"{len(job_pids)} leftover process(es) killed" in lines[0], lines
            wait_until(lambda: not pids_of_job(job_id), timeout=5, what="leftovers killed")
        await m2.close()
    finally:
        kill_job_processes(job_id)
