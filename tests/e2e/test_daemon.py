"""Black-box: the real `benchd` process on a real Unix socket (tests/support/daemon.py),
jobs run by the fake orchestrator under real supervisors. curl where a person would use it."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.daemon import (Daemon, UnixHTTPConnection, daemon_factory,  # noqa: F401
                                  marked_pids, wait_until)

CURL = shutil.which("curl")


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def curl(d: Daemon, *args: str) -> tuple[int, dict]:
    """curl --unix-socket as in README; returns (HTTP status, JSON body)."""
    out = subprocess.run([CURL, "-sS", "--unix-socket", str(d.socket_path), "-w", "\n%{http_code}",
                          *args], capture_output=True, text=True, timeout=60, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body) if body else {}


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_session_busy_bad_input_not_found_too_large_cancel(daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate), lines=5)
    api = "http://localhost/api/benchmark/jobs"
    status, job = curl(d, "-X", "POST", "-H", "Content-Type: application/json",
                       "-d", '{"experiments": ["gmst_era"], "n": 100}', api)
    assert status == 201 and job["status"] == "running" and job["config"]["n"] == 100
    status, err = curl(d, "-X", "POST", "-H", "Content-Type: application/json", "-d",
                       '{"queue": false}', api)   # busy only for a start that will not queue
    assert status == 409 and job["job_id"] in err["error"]["message"]
    for body, fragment in (('{"n": 0}', "n: must be between 1"),
                           ('{"n": "ten"}', "n: expected int or null, got str"),
                           ('{"colour": "red"}', "colour: unknown field")):
        status, err = curl(d, "-X", "POST", "-H", "Content-Type: application/json", "-d", body, api)
        assert status == 400 and fragment in err["error"]["message"], body
    big = d.root / "big.json"
    big.write_text('{"n": 1' + " " * 100_000 + "}")
    status, err = curl(d, "-X", "POST", "-H", "Content-Type: application/json",
                       "--data-binary", f"@{big}", api)
    assert status == 413 and err["error"]["code"] == "payload_too_large"
    assert curl(d, f"{api}/ffffffffffff")[0] == 404
    assert curl(d, "http://localhost/api/nope")[0] == 404
    assert curl(d, "-X", "PUT", f"{api}/{job['job_id']}")[0] == 405
    status, final = curl(d, "-X", "POST", "-H", "Content-Type: application/json",
                         "-d", '{"grace": 1}', f"{api}/{job['job_id']}/cancel")
    assert status == 200 and final["status"] == "cancelled" and final["finished_at"]
    status, jobs = curl(d, f"{api}?limit=5")
    assert status == 200 and [j["job_id"] for j in jobs["jobs"]] == [job["job_id"]]
    log = subprocess.run([CURL, "-sS", "--unix-socket", str(d.socket_path),
                          f"{api}/{job['job_id']}/logs?tail=2"], capture_output=True,
                         timeout=30, check=True).stdout
    assert log == b"".join(d.log_file(job["job_id"]).read_bytes().splitlines(True)[-2:])


def _follow(d: Daemon, job_id: str, offset: int, stop_after: int | None = None) -> bytes:
    """Stream ?follow=1 from `offset`; with stop_after, hang up after that many bytes."""
    conn = UnixHTTPConnection(d.socket_path, timeout=30)
    try:
        conn.request("GET", f"/api/benchmark/jobs/{job_id}/logs?follow=1&offset={offset}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("X-Log-Offset") == str(offset)
        out = b""
        while chunk := resp.read1(65536):
            out += chunk
            if stop_after is not None and len(out) >= stop_after:
                break
        return out
    except (http.client.IncompleteRead, ConnectionError) as e:  # daemon killed mid-stream
        return out + getattr(e, "partial", b"")
    finally:
        conn.close()


def test_kill9_mid_job_then_restart_reattaches_and_records_the_true_exit(daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(lines=50, wait_for_file=str(gate), exit_code=3, stderr_line="boom: bad thing")
    job = d.start_job(experiments=["gmst_era", "equ_ecl"])
    job_id = job["job_id"]
    received = _follow(d, job_id, 0, stop_after=200)
    supervisor = job["supervisor_pid"]
    d.kill9()
    assert d.socket_path.exists()  # a crashed daemon leaves its socket file behind
    assert alive(supervisor)  # ...and the job keeps running
    d.start()
    assert "removing stale socket" in d.stderr_text()
    health = d.get("/api/health").json()
    assert health["active_job"]["job_id"] == job_id and health["active_job"]["status"] == "running"
    gate.touch()
    received += _follow(d, job_id, len(received))  # resume at the offset reached: to the end
    final = d.wait_job(job_id)
    assert final["status"] == "failed" and final["exit_code"] == 3
    assert received == d.log_file(job_id).read_bytes()
    assert b"boom: bad thing" in received
    assert not alive(supervisor)


def test_second_benchd_on_the_same_root_is_refused(daemon_factory) -> None:
    d = daemon_factory()
    other = Daemon(d.root)  # same root, its own socket path
    try:
        other.start(wait=False)
        assert other.proc.wait(timeout=30) == 1
        assert "already running on root" in other.stderr_text()
        assert f"pid {d.proc.pid}" in other.stderr_text()
        assert not other.socket_path.exists()
    finally:
        other.close()
    assert d.get("/api/health").status == 200  # the first one is untouched


def test_socket_in_use_by_a_live_daemon_is_refused(daemon_factory, tmp_path: Path) -> None:
    d = daemon_factory()
    other = Daemon(tmp_path / "other-root", socket_path=d.socket_path)
    try:
        other.start(wait=False)
        assert other.proc.wait(timeout=30) == 1
        assert "already listening on" in other.stderr_text()
    finally:
        other.close()
    assert d.get("/api/health").status == 200


def test_socket_activation_uses_the_passed_listener(daemon_factory) -> None:
    d = daemon_factory(start=False)
    sock_dir = tempfile.mkdtemp(prefix="bd-act-", dir="/tmp")
    path = os.path.join(sock_dir, "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    # what systemd does: the socket as fd 3, LISTEN_FDS=1, LISTEN_PID = the service's pid
    launcher = ("import os, sys\n"
                f"os.dup2({listener.fileno()}, 3)\n"
                "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n")
    try:
        argv = [sys.executable, "-c", launcher, *d.argv()[1:]]
        own_path, d.socket_path = d.socket_path, Path(path)  # the helper talks to `path`
        d.start(wait=False, argv=argv, pass_fds=(listener.fileno(),))
        listener.close()  # only the daemon holds it now
        # a client may connect before benchd is ready: it waits in the backlog
        health = wait_until(lambda: _health_via(path), 30, 0.05, "activated benchd")
        assert health["socket"] == path and health["pid"] == d.proc.pid
        assert not own_path.exists()  # it did not bind its own --socket
        job = d.start_job()
        # the activated socket is inherited by nobody: the supervisor must not hold it
        sup = job["supervisor_pid"]
        assert not any(os.readlink(f"/proc/{sup}/fd/{fd}") == os.readlink(
            f"/proc/{d.proc.pid}/fd/3") for fd in os.listdir(f"/proc/{sup}/fd")
            if os.path.exists(f"/proc/{sup}/fd/{fd}"))
        d.wait_job(job["job_id"])
        assert d.stop() == 0
        assert os.path.exists(path)  # systemd's socket file is not ours to remove
    finally:
        d.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def _health_via(path: str) -> dict | None:
    conn = UnixHTTPConnection(path, timeout=30)
    try:
        conn.request("GET", "/api/health")
        r = conn.getresponse()
        return json.loads(r.read()) if r.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def test_sd_notify_ready_after_reconcile_status_watchdog_stopping(daemon_factory,
                                                                 tmp_path: Path) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate))
    job_id = d.start_job(experiments=["gmst_era"])["job_id"]
    d.kill9()  # the restarted daemon has a job to reconcile (reattach) before READY
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    npath = tmp_path / "notify.sock"
    nsock.bind(str(npath))
    nsock.settimeout(30)
    with nsock:
        d.start(wait=False, extra_env={"NOTIFY_SOCKET": str(npath), "WATCHDOG_USEC": "300000"})
        messages: list[str] = []

        def until(pred) -> str:
            while True:
                msg = nsock.recv(4096).decode()
                messages.append(msg)
                if pred(msg):
                    return msg

        ready = until(lambda m: "READY=1" in m)
        assert messages[0] == "STATUS=reconciling jobs"  # before READY, not after
        # with the job's progress when it was written before the kill (it is flushed within
        # 0.5 s, so whether it was depends on timing): either way it names the reattach
        assert any(line == f"STATUS=reattached to {job_id}"
                   or line.startswith(f"STATUS=reattached to {job_id} ")
                   for line in ready.split("\n")), ready
        assert d.get("/api/health").json()["active_job"]["job_id"] == job_id
        until(lambda m: m == "WATCHDOG=1")
        until(lambda m: m == "WATCHDOG=1")
        gate.touch()
        until(lambda m: m == f"STATUS=idle (last job {job_id} completed)")
        d.proc.send_signal(signal.SIGTERM)
        stopping = until(lambda m: m.startswith("STOPPING=1"))
        assert "EXTEND_TIMEOUT_USEC" not in stopping   # nothing to cancel: no extra time asked
        assert d.proc.wait(timeout=30) == 0
    env = Path(f"/proc/{os.getpid()}/environ")  # sanity: the test itself has no systemd vars
    assert b"NOTIFY_SOCKET" not in env.read_bytes()


def test_sigterm_with_on_stop_cancel_cancels_the_job(daemon_factory, tmp_path: Path) -> None:
    """...and asks systemd (EXTEND_TIMEOUT_USEC) for the grace period plus margins, so that a
    grace longer than TimeoutStopSec is not cut short by systemd's SIGKILL."""
    d = daemon_factory(on_stop="cancel", grace=1.0, start=False)
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    npath = tmp_path / "notify.sock"
    nsock.bind(str(npath))
    nsock.settimeout(30)
    d.start(extra_env={"NOTIFY_SOCKET": str(npath)})
    d.set_spec(wait_for_file=str(d.root / "never"), ignore_sigterm=True)
    job = d.start_job()
    # it has installed SIG_IGN for SIGTERM once it prints its first line
    wait_until(lambda: b"fake orchestrator pid" in d.log_file(job["job_id"]).read_bytes(),
               30, what="fake orchestrator up")
    assert d.stop() == 0
    with nsock:
        while "STOPPING=1" not in (msg := nsock.recv(4096).decode()):
            pass
    fields = dict(f.split("=", 1) for f in msg.split("\n"))
    assert int(fields["EXTEND_TIMEOUT_USEC"]) == int((1.0 + 5.0 + 10.0) * 1e6), msg
    assert fields["STATUS"] == f"stopping: cancelling job {job['job_id']}"
    rec = json.loads((d.root / "logs" / "jobs" / f"{job['job_id']}.json").read_text())
    assert rec["status"] == "cancelled" and rec["signal"] == "SIGKILL"
    assert marked_pids(d.marker) == []  # the job's processes are all gone


def test_sigterm_with_on_stop_leave_keeps_the_job_for_the_next_daemon(daemon_factory) -> None:
    d = daemon_factory()
    gate = d.root / "gate"
    d.set_spec(wait_for_file=str(gate))
    job = d.start_job()
    assert d.stop() == 0
    assert not d.socket_path.exists()  # a clean stop removes its own socket
    assert alive(job["supervisor_pid"])
    d.start()
    assert d.job(job["job_id"])["status"] == "running"
    gate.touch()
    assert d.wait_job(job["job_id"])["status"] == "completed"


def test_journal_logging_has_priorities_and_no_timestamps(daemon_factory) -> None:
    d = daemon_factory(start=False)
    d.stderr_path.touch()
    st = os.stat(d.stderr_path)
    d.start(extra_env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    d.stop()
    lines = d.stderr_text().splitlines()
    assert lines and all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines), lines
    assert any(line.startswith("<6>benchd.server: benchd ") for line in lines)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_other_users_cannot_cancel_a_job(daemon_factory) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to act as a second user")
    d = daemon_factory(extra_args=("--socket-mode", "0666"))
    os.chmod(d.socket_path.parent, 0o755)
    d.set_spec(wait_for_file=str(d.root / "gate"))
    job = d.start_job()
    # curl as uid 65534 (the venv's interpreter lives under /root, unreadable to nobody)
    out = subprocess.run([CURL, "-sS", "--unix-socket", str(d.socket_path), "-X", "POST",
                          f"http://localhost/api/benchmark/jobs/{job['job_id']}/cancel"],
                         capture_output=True, text=True, timeout=60, cwd="/",
                         preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
    body = json.loads(out.stdout)
    assert body["error"]["code"] == "forbidden", out
    assert "root" in body["error"]["message"]
    assert d.job(job["job_id"])["status"] == "running"


async def test_websocket_follow_of_a_real_daemon_ends_with_done(daemon_factory) -> None:
    import aiohttp
    d = daemon_factory()
    d.set_spec(lines=30, lines_per_s=300)
    job = d.start_job()
    conn = aiohttp.UnixConnector(path=str(d.socket_path))
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.ws_connect(f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs/ws"
                                "?offset=0", timeout=aiohttp.ClientWSTimeout(ws_close=30)) as ws:
            msgs = [json.loads(m.data) async for m in ws]
    assert msgs[-1] == {"type": "done", "status": "completed", "exit_code": 0}
    lines = [m["line"] for m in msgs if m["type"] == "log"]
    assert lines == d.log_file(job["job_id"]).read_text().splitlines()


@pytest.mark.parametrize("char", ["x", "\u20ac"])
async def test_websocket_delivers_a_long_line_written_in_many_pieces(daemon_factory,
                                                                     char: str) -> None:
    """A 3 MiB line written 64 KiB at a time reaches a WebSocket follower in `partial` pieces
    of about WS_MAX_LINE (a follower never buffers an endless unterminated line, e.g. a
    progress bar redrawn with \\r), each with the byte offset just after it; joined, they are
    the line exactly, and the newline that ends it arrives as an empty final piece. With a
    3-byte character (64 KiB writes cut characters in two) no piece splits one."""
    import aiohttp

    from benchd.api import WS_MAX_LINE
    from benchd.jobs import READ_CHUNK
    line = (char * (48 * 65536 // len(char.encode()))).encode()
    total = len(line)
    writer = ("import sys, time\n"
              f"line = {line[:12]!r} * {total // 12}\n"
              "for i in range(0, len(line), 65536):\n"
              "    sys.stdout.buffer.write(line[i:i + 65536]); sys.stdout.flush()\n"
              "    time.sleep(0.002)\n"
              "sys.stdout.write('\\nend\\n')\n")
    d = daemon_factory(orchestrator=[sys.executable, "-c", writer])
    job = d.start_job()
    conn = aiohttp.UnixConnector(path=str(d.socket_path))
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.ws_connect(f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs/ws"
                                "?offset=0", timeout=aiohttp.ClientWSTimeout(ws_close=30)) as ws:
            msgs = [json.loads(m.data) async for m in ws]
    logs = [m for m in msgs if m["type"] == "log"]
    pieces = [m for m in logs if m.get("partial")]
    assert len(pieces) >= 2 and all(len(m["line"]) < WS_MAX_LINE + READ_CHUNK for m in pieces)
    rest = logs[len(pieces):]
    assert "".join(m["line"] for m in pieces) + rest[0]["line"] == line.decode()
    pos = 0
    for m in pieces:
        pos += len(m["line"].encode())
        assert m["offset"] == pos
    assert rest[0]["offset"] == total + 1 and "partial" not in rest[0]
    assert [(m["line"], m["offset"]) for m in rest[1:]] == [("end", total + 5)]
    assert msgs[-1]["type"] == "done" and msgs[-1]["status"] == "completed"


def test_the_real_pipeline_runs_through_the_daemon(daemon_factory) -> None:
    d = daemon_factory(orchestrator=[sys.executable, "-m", "pipeline"])
    job = d.start_job(experiments=["gmst_era"], ci=True)
    final = d.wait_job(job["job_id"], timeout=240)
    log = d.log_file(job["job_id"]).read_text()
    assert final["status"] == "completed", log[-2000:]
    assert final["progress"]["total"] == 1 and final["run_dir"]
    assert (final["progress"]["n"], final["progress"]["seed"]) == (200, 42)  # --ci's defaults
    run_id = Path(final["run_dir"]).name
    runs = d.get("/api/results").json()["runs"]
    assert run_id in [r["run_id"] for r in runs]
    detail = d.get("/api/results/latest")
    assert detail.status == 200 and detail.json()["run_id"] == run_id
    assert d.get("/api/results/1999-01-01_00-00-00").status == 404
    exps = d.get("/api/experiments", timeout=120)
    assert exps.status == 200
    assert "gmst_era" in [e["experiment"] for e in exps.json()]


async def test_stopping_daemon_closes_websocket_followers_with_1001(daemon_factory) -> None:
    import aiohttp
    d = daemon_factory()
    d.set_spec(lines=3, wait_for_file=str(d.root / "gate"))
    job = d.start_job()
    conn = aiohttp.UnixConnector(path=str(d.socket_path))
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.ws_connect(f"http://benchd/api/benchmark/jobs/{job['job_id']}/logs/ws",
                                timeout=aiohttp.ClientWSTimeout(ws_close=30)) as ws:
            first = await ws.receive_json(timeout=30)
            assert first["type"] == "log"
            d.proc.send_signal(signal.SIGTERM)
            msgs = [m async for m in ws]
            assert all(json.loads(m.data)["type"] == "log" for m in msgs)  # no false "done"
            assert ws.close_code == 1001
    assert d.proc.wait(timeout=30) == 0
    assert alive(job["supervisor_pid"])  # --on-stop leave: the job is still running


def test_stopping_daemon_cuts_plain_text_followers_without_a_clean_end(daemon_factory) -> None:
    d = daemon_factory()
    d.set_spec(lines=3, wait_for_file=str(d.root / "gate"))
    job = d.start_job()
    conn = UnixHTTPConnection(d.socket_path, timeout=30)
    try:
        conn.request("GET", f"/api/benchmark/jobs/{job['job_id']}/logs?follow=1")
        resp = conn.getresponse()
        first = resp.read1(65536)
        assert first.startswith(b"fake orchestrator pid")
        d.proc.send_signal(signal.SIGTERM)
        with pytest.raises(http.client.IncompleteRead):  # cut, not a clean end of stream
            resp.read()
    finally:
        conn.close()
    assert d.proc.wait(timeout=30) == 0
    assert alive(job["supervisor_pid"])


def test_a_hand_started_daemon_makes_its_run_dir_0750(daemon_factory) -> None:
    """<root>/run holds the lock and, by default, the socket: others may not enter it."""
    d = daemon_factory()
    assert (d.root / "run").stat().st_mode & 0o777 == 0o750
