"""Resource exhaustion by clients: enough stalled connections to use up benchd's file
descriptors (RLIMIT_NOFILE lowered to 128 for the test; systemd's default soft limit is
1024, which any member of benchd's group can reach the same way). While it lasts new
clients wait; once they go, benchd must serve again and its job layer must not have lost
track of a job."""
from __future__ import annotations

import resource
import socket

from tests.support.daemon import Daemon, wait_until

NOFILE = 128


def _flood(d: Daemon, n: int) -> list[socket.socket]:
    """Open up to `n` connections that never send anything (a full backlog refuses more)."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(d.socket_path))
        except BlockingIOError:
            pass
        except OSError:  # backlog full
            s.close()
            break
        socks.append(s)
    return socks


def _exhausted(d: Daemon) -> bool:
    """True once benchd has run out of descriptors (asyncio says so in its log)."""
    return "Too many open files" in d.stderr_text()


def _serves(d: Daemon) -> bool:
    """One health request answered 200 (a full backlog refuses to connect: EAGAIN)."""
    try:
        return d.request("GET", "/api/health", timeout=2).status == 200
    except OSError:
        return False


def _start_limited(d: Daemon) -> None:
    d.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE)))


def test_descriptor_exhaustion_then_clients_leave_and_benchd_serves_again(
        daemon_factory) -> None:
    d: Daemon = daemon_factory(start=False)
    _start_limited(d)
    socks = _flood(d, 2 * NOFILE)
    try:
        wait_until(lambda: _exhausted(d), 20, 0.05, "benchd to run out of descriptors")
        assert d.running()
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: _serves(d), 30, 0.1, "benchd to serve again")
    job = d.start_job()
    assert d.wait_job(job["job_id"])["status"] == "completed"


def test_descriptor_exhaustion_during_a_job_does_not_lose_the_job(daemon_factory) -> None:
    d: Daemon = daemon_factory(start=False)
    gate = d.root / "gate"
    d.set_spec(lines=5, wait_for_file=str(gate), exit_code=3)
    _start_limited(d)
    job = d.start_job()
    socks = _flood(d, 2 * NOFILE)
    try:
        wait_until(lambda: _exhausted(d), 20, 0.05, "benchd to run out of descriptors")
        gate.touch()  # the job ends while benchd has no descriptors left
        jobs = d.root / "logs" / "jobs"

        def over() -> bool:  # the supervisor's exit record, or benchd already finalized it
            return ((jobs / f"{job['job_id']}.exit").exists()
                    or b'"status":"failed"' in (jobs / f"{job['job_id']}.json").read_bytes())
        wait_until(over, 20, 0.02, "the job to end")
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: _serves(d), 30, 0.1, "benchd to serve again")
    final = d.wait_job(job["job_id"], timeout=20)
    assert final["status"] == "failed" and final["exit_code"] == 3, final
    assert d.wait_job(d.start_job()["job_id"])["status"] in ("completed", "failed")


def test_a_burst_of_400_connections_is_queued_not_refused(daemon_factory) -> None:
    """400 clients connecting in the same instant (a cron minute, a CI fan-out): a Unix socket
    refuses connect() with EAGAIN once the listen backlog is full (there is no SYN retry as
    with TCP), so the backlog must be large enough; every client then gets its answer."""
    d: Daemon = daemon_factory()
    socks, refused = [], 0
    try:
        for _ in range(400):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(d.socket_path))
            except BlockingIOError:
                refused += 1
                s.close()
                continue
            socks.append(s)
        assert refused == 0, f"{refused} of 400 connects refused (listen backlog full)"
        for s in socks:
            s.setblocking(True)
            s.settimeout(30)
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for s in socks:
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
    finally:
        for s in socks:
            s.close()
