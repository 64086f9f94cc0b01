"""The per-job supervisor on its own (python -m benchd.supervisor), without benchd."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from benchd import procs
from benchd.schema import SCHEMA_VERSION
from benchd.store import Store
from tests.support import (fake_orchestrator_argv, kill_job_processes, pids_of_job,
                           wait_until, write_spec)

# a fresh id per test process: a concurrent test run must never match (and kill) our processes
JOB = secrets.token_hex(6)
ARGS = ["--experiments", "gmst_era", "--n", "5", "--seed", "1", "--perf-rounds", "1"]


def log_has(store: Store, text: bytes) -> bool:
    path = store.paths(JOB).log
    return path.exists() and text in path.read_bytes()


@pytest.fixture
def run_supervisor(tmp_path, monkeypatch):
    root = tmp_path / "root"
    spec_path = tmp_path / "spec.json"
    monkeypatch.setenv("FAKE_ORCHESTRATOR_SPEC", str(spec_path))
    started: list[subprocess.Popen] = []

    def run(spec: dict | None = None, grace: float = 5.0, argv: list[str] | None = None):
        write_spec(spec_path, **(spec or {}))
        store = Store(root)
        cmd = [sys.executable, "-m", "benchd.supervisor", "--root", str(root), "--job-id", JOB,
               "--grace", str(grace), "--",
               *(argv or [*fake_orchestrator_argv(), *ARGS, "--results-dir",
                          str(root / "results")])]
        p = subprocess.Popen(cmd, start_new_session=True,
                             env=dict(os.environ, **{procs.JOB_ENV: JOB}))
        started.append(p)
        return p, store
    yield run
    for p in started:
        p.kill()
        p.wait(10)
    kill_job_processes(JOB)


def test_runs_job_holds_lock_writes_info_and_exit(run_supervisor, tmp_path):
    gate = tmp_path / "gate"
    p, store = run_supervisor({"wait_for_file": str(gate)})
    paths = store.paths(JOB)
    info = wait_until(lambda: store.read_info(JOB), what="pid file")
    assert info.schema_version == SCHEMA_VERSION  # stdlib-written, decoded by the Struct
    assert info.job_id == JOB and info.started_at.endswith("+00:00")
    assert info.supervisor_pid == p.pid
    assert info.supervisor_start_ticks == procs.start_ticks(p.pid)
    assert os.getpgid(info.orchestrator_pid) == info.pgid == info.orchestrator_pid
    assert os.getsid(info.orchestrator_pid) == p.pid  # in the supervisor's session
    assert procs.lock_is_held(paths.lock)
    # empty for a few microseconds: Popen returns once execve is past the point of no return,
    # before the kernel has set up the new image's environment
    env = wait_until(lambda: open(f"/proc/{info.orchestrator_pid}/environ", "rb").read(),
                     what="orchestrator environment").split(b"\0")
    assert b"PYTHONUNBUFFERED=1" in env and f"{procs.JOB_ENV}={JOB}".encode() in env
    gate.touch()
    assert p.wait(15) == 0
    ex = store.read_exit(JOB)
    assert (ex.exit_code, ex.signal, ex.cancelled, ex.reason) == (0, None, False, None)
    assert not procs.lock_is_held(paths.lock)
    assert "experiments=gmst_era n=5" in paths.log.read_text()


def test_exit_status_and_signal_are_recorded(run_supervisor):
    p, store = run_supervisor({"exit_code": 4})
    assert p.wait(15) == 0
    assert store.read_exit(JOB).exit_code == 4
    assert store.read_exit(JOB).reason == "exited with code 4"


def test_killed_orchestrator_is_reported_by_signal(run_supervisor, tmp_path):
    p, store = run_supervisor({"wait_for_file": str(tmp_path / "never")})
    info = wait_until(lambda: store.read_info(JOB), what="pid file")
    os.kill(info.orchestrator_pid, signal.SIGKILL)  # nobody asked: a failure, not a cancel
    assert p.wait(15) == 0
    ex = store.read_exit(JOB)
    assert (ex.exit_code, ex.signal, ex.cancelled) == (None, "SIGKILL", False)
    assert ex.reason == "killed by SIGKILL"


def test_sigterm_to_supervisor_cancels_with_default_grace(run_supervisor, tmp_path):
    p, store = run_supervisor({"wait_for_file": str(tmp_path / "never"),
                               "ignore_sigterm": True}, grace=0.5)
    wait_until(lambda: log_has(store, b"fake orchestrator pid"),
               what="orchestrator set up")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert time.monotonic() - t0 >= 0.5
    ex = store.read_exit(JOB)
    assert ex.cancelled and ex.signal == "SIGKILL"
    assert pids_of_job(JOB) == []


def test_cancel_order_shorter_grace_wins(run_supervisor, tmp_path):
    from benchd.schema import CancelOrder
    from benchd.store import utc_now
    p, store = run_supervisor({"wait_for_file": str(tmp_path / "never"),
                               "ignore_sigterm": True})
    wait_until(lambda: log_has(store, b"fake orchestrator pid"),
               what="orchestrator set up")
    store.write_cancel(JOB, CancelOrder(requester_uid=5, grace=60.0, requested_at=utc_now()))
    os.kill(p.pid, signal.SIGUSR1)
    wait_until(lambda: log_has(store, b"SIGKILL in 60 s"), what="SIGTERM")
    store.write_cancel(JOB, CancelOrder(requester_uid=5, grace=0.2, requested_at=utc_now()))
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGUSR1)
    assert p.wait(15) == 0
    assert time.monotonic() - t0 < 5
    ex = store.read_exit(JOB)
    assert ex.cancelled and "killed by SIGKILL after the 0.2 s grace" in ex.reason


def test_escaped_grandchild_is_killed_when_job_ends(run_supervisor):
    p, store = run_supervisor({"double_fork": True})
    assert p.wait(15) == 0
    ex = store.read_exit(JOB)
    assert ex.exit_code == 0 and ex.leftover_killed == 1
    assert pids_of_job(JOB) == []


def test_unstartable_command_writes_failed_exit_record(run_supervisor, tmp_path):
    p, store = run_supervisor(argv=[str(tmp_path / "nope")])
    assert p.wait(15) == 0
    ex = store.read_exit(JOB)
    assert ex.exit_code is None and "failed to start" in ex.reason
    assert "failed to start" in store.paths(JOB).log.read_text()


def test_supervisor_is_import_light():
    out = subprocess.run([sys.executable, "-c", "import sys, benchd.supervisor; "
                          "print(sorted(m for m in ('aiohttp','numpy','click','erfa') "
                          "if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
