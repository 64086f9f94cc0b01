"""Followers under pressure: benchd killed (-9) and restarted while 20 followers tail a job
writing 5,000 lines/s; followers that stop reading while the log grows. Every follower must
end with the file's exact bytes; the daemon's memory must not grow with the backlog."""
from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time

from tests.hostile.loadrun import LOADGEN, firehose_argv, rss_kib
from tests.hostile.rawhttp import build
from tests.support.daemon import Daemon, wait_until

JOBS = "/api/benchmark/jobs"


def test_kill9_under_a_5000_lines_per_s_stream_followers_resume_byte_exact(
        daemon_factory) -> None:
    d: Daemon = daemon_factory(orchestrator=firehose_argv(5000, 6))
    job_id = d.start_job()["job_id"]
    log = d.log_file(job_id)
    follow = subprocess.Popen([sys.executable, str(LOADGEN), "follow", "--socket",
                               str(d.socket_path), "--job", job_id, "--followers", "20",
                               "--timeout", "120", "--reconnect"], stdout=subprocess.PIPE,
                              env=d.process_env())
    try:
        wait_until(lambda: log.exists() and log.stat().st_size > 200_000, 30, 0.01,
                   "the job to be well under way")
        d.kill9()
        size_at_kill = log.stat().st_size
        d.start()  # reattaches; the followers reconnect at their offsets
        out, _ = follow.communicate(timeout=150)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    final = d.wait_job(job_id, timeout=60)
    assert final["status"] == "completed", final
    data = log.read_bytes()
    assert len(data) > size_at_kill  # the job kept writing while benchd was down
    want = hashlib.sha256(data).hexdigest()
    followers = json.loads(out)["followers"]
    assert [f["error"] for f in followers if f["error"]] == []
    assert all(f["bytes"] == len(data) and f["sha256"] == want for f in followers), \
        [(f["bytes"], len(data)) for f in followers]
    assert sum(f["cuts"] for f in followers) >= 20  # every one of them was really cut


def test_followers_that_stop_reading_do_not_grow_the_daemon(daemon_factory) -> None:
    """20 followers read nothing while the job writes ~6 MB; benchd must not buffer it for
    them (each reads the file at its own offset, paced by its socket). When they resume,
    each gets the exact log."""
    d: Daemon = daemon_factory(orchestrator=firehose_argv(30_000, 3))
    job_id = d.start_job()["job_id"]
    log = d.log_file(job_id)
    socks = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(str(d.socket_path))
        s.sendall(build("GET", f"{JOBS}/{job_id}/logs?follow=1&offset=0"))
        socks.append(s)
    try:
        base = rss_kib(d.proc.pid)
        peak = base
        deadline = time.monotonic() + 60
        while d.job(job_id)["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, "the job did not end within 60 s"
            peak = max(peak, rss_kib(d.proc.pid))
            time.sleep(0.05)  # RSS sampling interval
        size = log.stat().st_size
        assert size > 5_000_000, size
        growth_mib = (peak - base) / 1024
        print(f"\nRSS {base / 1024:.1f} -> peak {peak / 1024:.1f} MiB, log {size / 1e6:.1f} MB")
        assert growth_mib < 40, f"RSS grew {growth_mib:.1f} MiB for a {size / 1e6:.0f} MB backlog"
        want = log.read_bytes()
        for s in socks:  # now read everything: exact bytes, clean end
            s.settimeout(60)
            raw = b""
            while chunk := s.recv(1 << 20):
                raw += chunk
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            out = bytearray()
            while True:
                line, _, body = body.partition(b"\r\n")
                n = int(line, 16)
                if n == 0:
                    break
                out += body[:n]
                body = body[n + 2:]
            assert bytes(out) == want
    finally:
        for s in socks:
            s.close()


def test_websocket_followers_that_stop_reading_do_not_grow_the_daemon(daemon_factory) -> None:
    """Same for WebSocket followers (one message per line): a client that completes the
    handshake and never reads must not make benchd queue the log in memory."""
    import base64
    import os
    d: Daemon = daemon_factory(orchestrator=firehose_argv(30_000, 3))
    job_id = d.start_job()["job_id"]
    socks = []
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(str(d.socket_path))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(build("GET", f"{JOBS}/{job_id}/logs/ws?offset=0", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": key}))
        socks.append(s)
    try:
        first = socks[0].recv(12)
        assert first.startswith(b"HTTP/1.1 101"), first
        base = rss_kib(d.proc.pid)
        peak = base
        deadline = time.monotonic() + 60
        while d.job(job_id)["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, "the job did not end within 60 s"
            peak = max(peak, rss_kib(d.proc.pid))
            time.sleep(0.05)  # RSS sampling interval
        size = d.log_file(job_id).stat().st_size
        assert size > 5_000_000, size
        growth_mib = (peak - base) / 1024
        print(f"\nRSS {base / 1024:.1f} -> peak {peak / 1024:.1f} MiB, log {size / 1e6:.1f} MB")
        assert growth_mib < 40, f"RSS grew {growth_mib:.1f} MiB for a {size / 1e6:.0f} MB backlog"
        assert d.get("/api/health").status == 200
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: d.get("/api/health").status == 200, 10)


def test_followers_that_leave_a_quiet_job_free_their_files(daemon_factory) -> None:
    """A follower of a silent job gets nothing to write, so benchd cannot notice its client
    leave by writing; 40 that connect and go away must still release their open log files
    and handlers (else clients that re-request silent streams, like benchctl's
    --stall-timeout, would exhaust benchd's descriptors)."""
    import os
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(lines=3, wait_for_file=str(gate))
    job_id = d.start_job()["job_id"]
    wait_until(lambda: b"line 2 of 3" in d.log_file(job_id).read_bytes(), 15, what="job log")
    end = d.log_file(job_id).stat().st_size

    def fds() -> int:
        return len(os.listdir(f"/proc/{d.proc.pid}/fd"))

    base = fds()
    socks = []
    for _ in range(40):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(d.socket_path))
        s.sendall(build("GET", f"{JOBS}/{job_id}/logs?follow=1&offset={end}"))
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        socks.append(s)
    assert fds() >= base + 60          # each: its connection and (soon) its open log file
    for s in socks:
        s.close()
    wait_until(lambda: fds() <= base + 2, 15, what="benchd to let go of the followers")
    gate.touch()
    assert d.wait_job(job_id)["status"] == "completed"
