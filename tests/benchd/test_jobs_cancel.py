"""Cancel through JobManager: real supervisors, real signals, real process trees."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchd import jobs
from benchd.errors import CancelFailed, Forbidden, InvalidRequest, NotCancellable
from benchd.jobs import JobManager
from benchd.schema import JobConfig
from benchd.states import JobState
from benchd.supervisor import _user_name  # 'alice', else 'uid N'
from tests.support import (JOBHOST, async_wait_until, fake_orchestrator_argv,
                           grandchild_started,
                           kill_job_processes, pid_alive, pids_of_job, wait_until)

CFG = JobConfig(experiments=["gmst_era"], ci=True)


async def orchestrator_ready(m: JobManager, job_id: str) -> None:
    """The fake prints its first line after installing its signal dispositions."""
    await async_wait_until(lambda: b"fake orchestrator pid" in m.log_path(job_id).read_bytes(),
                           what="orchestrator set up")


@pytest.fixture
def gate(tmp_path):
    return tmp_path / "gate"   # never created unless the test says so: holds the job running


@pytest.fixture
async def make_manager(tmp_path, spec):
    made = []

    async def make(**kw):
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        m = JobManager(root, orchestrator=fake_orchestrator_argv(), **kw)
        await m.reconcile()
        made.append(m)
        return m
    yield make
    for m in made:
        await m.close()
        for rec in m.list_jobs():
            kill_job_processes(rec.job_id)


async def test_cancel_job_that_obeys_sigterm(make_manager, spec, gate):
    m = await make_manager(grace=5.0)
    spec(wait_for_file=str(gate))
    rec = await m.start(CFG, uid=1000, user="alice")
    # supervisor + orchestrator (whose environment is readable once its execve completes)
    wait_until(lambda: len(pids_of_job(rec.job_id)) == 2, what="both processes of the job")
    t0 = time.monotonic()
    final = await m.cancel(rec.job_id, uid=1000)
    took = time.monotonic() - t0
    assert final.status == JobState.CANCELLED
    assert final.signal == "SIGTERM" and final.exit_code is None
    assert final.cancel_requested_by == 1000 and final.cancel_grace == 5.0
    assert final.reason.startswith(f"cancelled by {_user_name(1000)}: stopped by SIGTERM after ")
    assert took < 4.0  # it did not wait for the grace: the job stopped at SIGTERM
    assert pids_of_job(rec.job_id) == []
    assert m.active() is None
    assert f"cancel requested by {_user_name(1000)}" in m.log_path(rec.job_id).read_text()


async def test_cancel_job_that_ignores_sigterm_is_killed_after_grace(make_manager, spec, gate):
    m = await make_manager(grace=30.0)
    spec(wait_for_file=str(gate), ignore_sigterm=True)
    rec = await m.start(CFG, uid=1000, user="alice")
    await orchestrator_ready(m, rec.job_id)
    t0 = time.monotonic()
    final = await m.cancel(rec.job_id, uid=1000, grace=0.7)
    took = time.monotonic() - t0
    assert final.status == JobState.CANCELLED
    assert final.signal == "SIGKILL"
    assert final.cancel_grace == 0.7
    assert "killed by SIGKILL after the 0.7 s grace" in final.reason
    assert 0.7 <= took < 0.7 + jobs.CANCEL_MARGIN_S  # grace respected, then killed
    assert pids_of_job(rec.job_id) == []


async def test_cancel_leaves_no_double_forked_grandchild(make_manager, spec, gate):
    m = await make_manager(grace=5.0)
    spec(wait_for_file=str(gate), double_fork=True)
    rec = await m.start(CFG, uid=1000, user="alice")
    # supervisor, orchestrator and the setsid'd grandchild (its own session and group)
    pids = wait_until(lambda: grandchild_started(rec.job_id), what="grandchild")
    sessions = {os.getsid(p) for p in pids}
    assert len(sessions) >= 2  # the grandchild really escaped the job's session
    final = await m.cancel(rec.job_id, uid=1000)
    assert final.status == JobState.CANCELLED
    assert pids_of_job(rec.job_id) == []
    assert not any(pid_alive(p) for p in pids)


async def test_completed_job_leaves_no_escaped_process(make_manager, spec):
    m = await make_manager()
    spec(double_fork=True)
    rec = await m.start(CFG, uid=1000, user="alice")
    final = None
    async for final in m.watch(rec.job_id):
        pass
    assert final.status == JobState.COMPLETED
    assert pids_of_job(rec.job_id) == []
    assert "killed 1 leftover process(es)" in m.log_path(rec.job_id).read_text()


async def test_finish_racing_cancel_is_completed(make_manager, spec, gate):
    """SIGTERM went out but the orchestrator (ignoring it) exited 0: the truth is completed."""
    m = await make_manager()
    spec(wait_for_file=str(gate), ignore_sigterm=True)
    rec = await m.start(CFG, uid=1000, user="alice")
    await orchestrator_ready(m, rec.job_id)
    task = asyncio.create_task(m.cancel(rec.job_id, uid=1000, grace=20.0))
    await async_wait_until(lambda: "SIGTERM to process group" in
                           m.log_path(rec.job_id).read_text(), what="SIGTERM sent")
    gate.touch()
    final = await asyncio.wait_for(task, 15)
    assert final.status == JobState.COMPLETED and final.exit_code == 0
    assert final.cancel_requested_by == 1000
    assert pids_of_job(rec.job_id) == []


async def test_cancel_while_starting_waits_for_start(make_manager, spec, gate):
    m = await make_manager()
    spec(wait_for_file=str(gate))
    start = asyncio.create_task(m.start(CFG, uid=1000, user="alice"))
    await async_wait_until(lambda: m.active() is not None, what="job accepted")
    job_id = m.active().job_id
    final = await asyncio.wait_for(m.cancel(job_id, uid=1000), 15)
    assert (await start).job_id == job_id
    assert final.status == JobState.CANCELLED
    assert pids_of_job(job_id) == []


async def test_cancel_permissions(make_manager, spec, gate):
    m = await make_manager()
    spec(wait_for_file=str(gate))
    rec = await m.start(CFG, uid=4242, user="carol")
    with pytest.raises(Forbidden) as ei:
        await m.cancel(rec.job_id, uid=1)
    assert "carol" in ei.value.message and rec.job_id in ei.value.message
    assert m.get(rec.job_id).status == JobState.RUNNING
    assert m.get(rec.job_id).cancel_requested_by is None
    # root may cancel anyone's job
    assert (await m.cancel(rec.job_id, uid=0)).status == JobState.CANCELLED


async def test_admin_group_member_may_cancel(make_manager, spec, gate):
    import pwd
    daemon = pwd.getpwuid(1)  # a system account that exists on Debian; its primary group
    m = await make_manager(admin_gid=daemon.pw_gid)
    spec(wait_for_file=str(gate))
    rec = await m.start(CFG, uid=4242, user="carol")
    final = await m.cancel(rec.job_id, uid=1)
    assert final.status == JobState.CANCELLED and final.cancel_requested_by == 1


async def test_cancel_errors(make_manager, spec, gate):
    m = await make_manager()
    spec(wait_for_file=str(gate))
    rec = await m.start(CFG, uid=1000, user="alice")
    for bad in (-1, float("nan"), float("inf"), 10**6, True, "5"):
        with pytest.raises(InvalidRequest) as ei:
            await m.cancel(rec.job_id, uid=1000, grace=bad)
        assert ei.value.message.startswith("grace:")
    assert m.get(rec.job_id).status == JobState.RUNNING
    gate.touch()
    async for final in m.watch(rec.job_id):
        pass
    assert final.status == JobState.COMPLETED
    with pytest.raises(NotCancellable) as ei:
        await m.cancel(rec.job_id, uid=1000)
    assert "completed" in ei.value.message


async def test_cancel_failed_when_supervisor_cannot_act(make_manager, spec, gate, monkeypatch):
    """A SIGSTOPped supervisor cannot escalate: cancel reports CancelFailed, not a lie."""
    monkeypatch.setattr(jobs, "CANCEL_MARGIN_S", 0.5)
    m = await make_manager()
    spec(wait_for_file=str(gate))
    rec = await m.start(CFG, uid=1000, user="alice")
    os.kill(rec.supervisor_pid, signal.SIGSTOP)
    try:
        with pytest.raises(CancelFailed) as ei:
            await m.cancel(rec.job_id, uid=1000, grace=0.2)
        assert rec.job_id in ei.value.message
        assert m.get(rec.job_id).status == JobState.RUNNING
    finally:
        os.kill(rec.supervisor_pid, signal.SIGCONT)
    # once it runs again it acts on the pending order
    async for final in m.watch(rec.job_id):
        pass
    assert final.status == JobState.CANCELLED
    assert pids_of_job(rec.job_id) == []


def test_cancel_completes_even_if_benchd_dies_during_grace(tmp_path, spec):
    root = tmp_path / "root"
    root.mkdir()
    spec(wait_for_file=str(tmp_path / "gate"), ignore_sigterm=True)
    host = subprocess.Popen([sys.executable, str(JOBHOST), str(root), "--grace", "1.5",
                             "--start", json.dumps({"experiments": ["gmst_era"]}),
                             "--cancel-after-start"],
                            stdout=subprocess.PIPE, text=True)
    job_id = None
    try:
        events = []
        for line in host.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "started":
                job_id = events[-1]["record"]["job_id"]
            if events[-1]["event"] == "cancel_sent":
                break
        assert job_id and events[-1]["event"] == "cancel_sent"
        host.kill()  # "benchd" dies inside the grace period
        host.wait(10)
        assert pids_of_job(job_id)  # the job is still there, SIGTERM ignored
        wait_until(lambda: not pids_of_job(job_id), timeout=15, what="escalation to SIGKILL")
        exit_file = root / "logs" / "jobs" / f"{job_id}.exit"
        assert json.loads(exit_file.read_text())["cancelled"] is True

        async def reconcile():
            m = JobManager(root, orchestrator=fake_orchestrator_argv())
            lines = await m.reconcile()
            async for rec in m.watch(job_id):  # a supervisor still exiting is reattached
                pass
            await m.close()
            return lines, rec
        lines, rec = asyncio.run(reconcile())
        assert rec.status == JobState.CANCELLED and rec.signal == "SIGKILL"
        assert rec.cancel_requested_by == 1000 and rec.cancel_grace == 1.5
        assert rec.reason == f"cancelled by {_user_name(1000)}: killed by SIGKILL after the 1.5 s grace"
        assert any(job_id in line for line in lines)
    finally:
        host.kill()
        host.wait(10)
        if job_id:
            kill_job_processes(job_id)


def test_cancel_in_progress_is_visible_after_benchd_restart(tmp_path, spec):
    """benchd dies right after accepting a cancel; the next one reattaches, shows the cancel
    (requester, grace) at once, and records the outcome the supervisor reaches."""
    root = tmp_path / "root"
    root.mkdir()
    spec(wait_for_file=str(tmp_path / "gate"), ignore_sigterm=True)
    host = subprocess.Popen([sys.executable, str(JOBHOST), str(root), "--grace", "3",
                             "--start", json.dumps({"experiments": ["gmst_era"]}),
                             "--cancel-after-start"],
                            stdout=subprocess.PIPE, text=True)
    job_id = None
    try:
        for line in host.stdout:
            ev = json.loads(line)
            if ev["event"] == "started":
                job_id = ev["record"]["job_id"]
            if ev["event"] == "cancel_sent":
                break
        host.kill()
        host.wait(10)

        async def reconcile():
            m = JobManager(root, orchestrator=fake_orchestrator_argv())
            lines = await m.reconcile()
            during = m.get(job_id)
            async for final in m.watch(job_id):
                pass
            await m.close()
            return lines, during, final
        lines, during, final = asyncio.run(reconcile())
        assert "reattached" in lines[0]
        assert during.status == JobState.RUNNING
        assert (during.cancel_requested_by, during.cancel_grace) == (1000, 3.0)
        assert final.status == JobState.CANCELLED and final.signal == "SIGKILL"
        assert pids_of_job(job_id) == []
    finally:
        host.kill()
        host.wait(10)
        if job_id:
            kill_job_processes(job_id)
