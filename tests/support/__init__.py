"""Helpers shared by the test suite: bounded waits, the fake orchestrator's argv and spec,
and /proc scans for a job's processes."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
FAKE_ORCHESTRATOR = SUPPORT / "fake_orchestrator.py"
JOBHOST = SUPPORT / "jobhost.py"  # a JobManager in its own process (to SIGKILL "benchd")
JOB_ENV = "BENCHD_JOB_ID"  # benchd.procs.JOB_ENV; repeated so helpers need no benchd import


def fake_orchestrator_argv() -> list[str]:
    """argv prefix that makes benchd run the fake orchestrator instead of `-m pipeline`."""
    return [sys.executable, str(FAKE_ORCHESTRATOR)]


def write_spec(path: Path, **spec: object) -> Path:
    """Write a fake-orchestrator behaviour spec (see tests/support/fake_orchestrator.py)."""
    path.write_text(json.dumps(spec))
    return path


def wait_until(pred: Callable[[], object], timeout: float = 10.0, interval: float = 0.01,
               what: str = "condition") -> object:
    """Poll `pred` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def async_wait_until(pred: Callable[[], object], timeout: float = 10.0,
                           interval: float = 0.01, what: str = "condition") -> object:
    """wait_until for coroutines: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def pids_of_job(job_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries BENCHD_JOB_ID=<job_id>."""
    needle = f"{JOB_ENV}={job_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:][:1]
        if needle in env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def grandchild_started(job_id: str) -> list[int] | None:
    """The job's processes once the fake orchestrator's double-forked grandchild has exec'd
    (its argv says so), else None. Counting processes is not enough: the middle child, not
    yet in its own session, would count as the grandchild."""
    pids = pids_of_job(job_id)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"fake-orchestrator-grandchild" in f.read():
                    return pids
        except OSError:
            continue
    return None


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def kill_job_processes(job_id: str) -> None:
    """Last-resort cleanup for a test that failed half-way: SIGKILL the job's processes."""
    import signal
    for pid in pids_of_job(job_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def final_record(manager, job_id: str, timeout: float = 20.0):
    """The job's record once it is final (JobManager.watch ends there); TimeoutError after
    `timeout` s."""
    async def last():
        rec = None
        async for rec in manager.watch(job_id):
            pass
        return rec
    return await asyncio.wait_for(last(), timeout)
