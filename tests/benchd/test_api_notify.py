"""benchd.notify: real datagrams on a NOTIFY_SOCKET the test binds (no systemd needed)."""
from __future__ import annotations

import asyncio
import os
import time
import socket
from pathlib import Path

import pytest

from benchd.notify import Notifier, on_change_status, status_text, watchdog_interval
from benchd.schema import JobConfig, JobRecord, Progress
from benchd.states import JobState


def _record(status: JobState, **kw: object) -> JobRecord:
    return JobRecord(job_id="0123456789ab", status=status, config=JobConfig(),
                     requester_uid=0, requester_name="root", created_at="2026-01-01T00:00:00Z",
                     **kw)


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_status_text_says_what_the_daemon_does() -> None:
    assert status_text(None) == "idle"
    running = _record(JobState.RUNNING, progress=Progress(k=3, total=9,
                                                          experiment="frame_rotation_bpn"))
    assert status_text(running) == "running 0123456789ab 3/9 frame_rotation_bpn"
    assert status_text(running, reattached=True).startswith("reattached to 0123456789ab 3/9")
    cancelling = _record(JobState.RUNNING, cancel_requested_by=1000)
    assert status_text(cancelling) == "cancelling 0123456789ab"
    assert status_text(_record(JobState.FAILED)) == "idle (last job 0123456789ab failed)"


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_us() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({}) is None


def test_messages_arrive_and_systemd_variables_are_not_inherited(notify_socket) -> None:
    n = Notifier()
    assert "NOTIFY_SOCKET" not in os.environ  # job processes must not inherit it
    n.ready("idle")
    msg = notify_socket.recv(4096).decode().split("\n")
    assert msg[:2] == ["READY=1", "STATUS=idle"]
    hook = on_change_status(n)
    hook(_record(JobState.RUNNING, progress=Progress(k=1, total=2, experiment="gmst_era")))
    assert notify_socket.recv(4096) == b"STATUS=running 0123456789ab 1/2 gmst_era"
    n.status("running 0123456789ab 1/2 gmst_era")  # unchanged text is not resent
    n.stopping()
    assert notify_socket.recv(4096).decode().startswith("STOPPING=1")


async def test_watchdog_pings_come_from_the_loop(notify_socket, monkeypatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # ping every 20 ms
    n = Notifier()
    assert n.watchdog_s == pytest.approx(0.02)
    notify_socket.setblocking(False)
    loop = asyncio.get_running_loop()
    n.start_watchdog()
    pings = [await asyncio.wait_for(loop.sock_recv(notify_socket, 64), 5) for _ in range(3)]
    assert pings == [b"WATCHDOG=1"] * 3
    # block the loop (as a stuck handler would) for 10 intervals: no ping may get out, so
    # systemd sees the hang; a pinger on its own thread would keep pinging and hide it
    while True:                          # drain what was sent before the block
        try:
            notify_socket.recv(64)
        except BlockingIOError:
            break
    time.sleep(0.2)
    during = []
    while True:
        try:
            during.append(notify_socket.recv(64))
        except BlockingIOError:
            break
    assert during == []                  # the loop sent nothing while it was blocked
    assert await asyncio.wait_for(loop.sock_recv(notify_socket, 64), 5) == b"WATCHDOG=1"
    await n.stop_watchdog()
    assert n._task is None


def test_without_notify_socket_everything_is_a_no_op(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.watchdog_s is None
    n.ready("idle")
    n.stopping()
