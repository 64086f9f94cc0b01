"""Huge `?tail=` requests against a real daemon: finding where the last N lines start scans
the log, and that scan must never hold benchd's event loop (/api/health, the systemd
watchdog ping and every other client wait on it).

To show that a scan is in progress without a timing threshold, the test holds a write lease
(fcntl F_SETLEASE) on the job log: the kernel then blocks any other process's open() of the
file until the lease is released. While ten tail=10^9 requests are stuck in that open(),
/api/health must answer; before the fix the open() (and the scan) ran on the event loop, so
health could not answer until the lease was let go.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.daemon import Daemon, UnixHTTPConnection, wait_until

JOBS = "/api/benchmark/jobs"
LINES = 2_000_000
HEALTH_TIMEOUT_S = 30.0  # well below the kernel's lease-break-time (45 s): see _lease


@dataclass
class TailResult:
    status: int | None = None
    offset: str | None = None
    size: int = 0
    sha256: str = ""
    error: str | None = None
    headers: threading.Event = field(default_factory=threading.Event)


def _tail(d: Daemon, job_id: str, lines: int, out: TailResult) -> None:
    """GET ?tail=`lines`, stream the body into a hash (the log is tens of MB)."""
    conn = UnixHTTPConnection(d.socket_path, timeout=120)
    try:
        conn.request("GET", f"{JOBS}/{job_id}/logs?tail={lines}")
        resp = conn.getresponse()
        out.status, out.offset = resp.status, resp.getheader("X-Log-Offset")
        out.headers.set()
        h = hashlib.sha256()
        while chunk := resp.read(1 << 16):
            h.update(chunk)
            out.size += len(chunk)
        out.sha256 = h.hexdigest()
    except Exception as e:  # reported by the test, not lost in the thread
        out.error = repr(e)
    finally:
        out.headers.set()
        conn.close()


def _write_short_lines(path: Path, n: int) -> None:
    with open(path, "ab") as f:
        for start in range(0, n, 100_000):
            f.write(b"".join(b"%d\n" % i for i in range(start, min(n, start + 100_000))))


class _lease:
    """A write lease on `path`: another process's open() of it blocks until we release (or
    the kernel's lease-break-time passes). SIGIO, the break notice, is ignored meanwhile."""

    def __init__(self, path: Path) -> None:
        self.old = signal.signal(signal.SIGIO, signal.SIG_IGN)
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as e:
            os.close(self.fd)
            signal.signal(signal.SIGIO, self.old)
            if e.errno == errno.EINVAL:  # leases disabled, or a filesystem without them
                pytest.skip(f"no file leases on {path}: {e}")
            raise

    def broken(self) -> bool:
        """True once another process is blocked opening the file (a lease break pends)."""
        return fcntl.fcntl(self.fd, fcntl.F_GETLEASE) != fcntl.F_WRLCK

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
            os.close(self.fd)
            self.fd = -1
            signal.signal(signal.SIGIO, self.old)


def test_health_answers_while_ten_tail_1e9_requests_are_still_scanning_the_log(
        daemon_factory) -> None:
    d: Daemon = daemon_factory()
    job_id = d.start_job()["job_id"]
    d.wait_job(job_id)  # finished: nothing in benchd has its log open
    log = d.log_file(job_id)
    _write_short_lines(log, LINES)
    data = log.read_bytes()
    want = hashlib.sha256(data).hexdigest()
    assert data.count(b"\n") > LINES

    lease = _lease(log)
    results = [TailResult() for _ in range(10)]
    threads = [threading.Thread(target=_tail, args=(d, job_id, 10**9, r), daemon=True)
               for r in results]
    try:
        for t in threads:
            t.start()
        wait_until(lease.broken, 30, 0.005, "a tail request to open the log inside benchd")
        # a tail is now inside benchd's scan, blocked in open(): none can have answered
        try:
            health = d.get("/api/health", timeout=HEALTH_TIMEOUT_S)
        except TimeoutError:
            pytest.fail("/api/health did not answer while tail requests were scanning the "
                        "log: the scan holds benchd's event loop")
        assert health.status == 200, health.body
        answered = [i for i, r in enumerate(results) if r.headers.is_set()]
        assert answered == [], f"tails {answered} answered while the lease was held"
    finally:
        lease.release()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for r in results:  # tail=10^9 > the log's lines: the whole log, from offset 0
        assert (r.error, r.status, r.offset, r.size, r.sha256) == \
            (None, 200, "0", len(data), want)
